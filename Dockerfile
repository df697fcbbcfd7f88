# One image for the Dataflow GPU workers and the launcher (`pass-pipeline refresh`, the monthly Cloud Run job).
#
# - CUDA 13 + cuDNN 9 runtime: what onnxruntime-gpu 1.31 links against (its wheel looks for
#   libcudart.so.13 and libcudnn.so.9; without them it logs an error and falls back to the CPU).
# - Python 3.11 and Beam 2.77.0: the same minor version and SDK as pyproject.toml, or the worker
#   harness refuses the job.
# - Beam's boot binary from the matching SDK image; it must stay the ENTRYPOINT on workers.
# - The project's dependencies with its `gpu` extra, then the models, then the code (layers in the
#   order they change); onnxruntime (CPU) is removed if anything pulled it in, because both wheels
#   write the same package folder and the last one installed wins silently.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam

FROM ${CUDA_IMAGE}
ARG PYTHON_VERSION
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Python 3.11 from the deadsnakes archive (Ubuntu 24.04 ships 3.12).
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common=0.99.* gpg-agent=2.4.* \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends "python${PYTHON_VERSION}=${PYTHON_VERSION}.*" \
    "python${PYTHON_VERSION}-venv=${PYTHON_VERSION}.*" libgl1=1.7.* libglib2.0-0t64=2.80.* \
 && rm -rf /var/lib/apt/lists/* \
 && "python${PYTHON_VERSION}" -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /opt/pass-pipeline
# Dependencies first, then the models, then the code: a change to the code rebuilds only the last
# layers. Versions are pinned in pyproject.toml (Beam exactly, onnxruntime-gpu exactly).
COPY pyproject.toml ./
# hadolint ignore=DL3013
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" > /tmp/requirements.txt \
 && pip install --no-compile -r /tmp/requirements.txt \
 && (pip uninstall -y onnxruntime || true) \
 && python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()"
COPY models ./models
RUN python models/fetch_models.py
COPY README.md ./
COPY pipeline ./pipeline
# hadolint ignore=DL3013
RUN pip install --no-compile --no-deps ".[gpu]"

COPY --from=beam /opt/apache/beam /opt/apache/beam
ENV PASS_MODELS=/opt/pass-pipeline/models

# No credentials in the image: workers get them from their service account, the Flickr key from
# Secret Manager at run time. The launcher's Cloud Run job runs `pass-pipeline` in place of this entrypoint.
ENTRYPOINT ["/opt/apache/beam/boot"]
