"""Images per second for the whole job on the local runner against two baselines over the same
URLs, in the same process run: a plain sequential loop (requests + Pillow + imagehash) and
img2dataset 1.47.0 (2 processes x 16 threads, 512 px, WebDataset), the tool PASS-style jobs are
usually compared with.

    .venv/bin/python -m benchmarks.end_to_end [--images 400] [--skip_img2dataset]

img2dataset is installed on first use into its own throwaway virtual environment under
~/.cache/pass-bench/ (`python -m venv` + `pip install img2dataset==1.47.0`, about a minute), never
into the project's. Prints ratios against the baselines measured in this run: these machines are
shared and noisy, so absolute numbers from different runs are not comparable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import requests
from PIL import Image

from benchmarks import arguments
from benchmarks.corpus import Served, distinct_photos, job_args, served
from pipeline.cli import run
from pipeline.usage import OneLineParser, usage_said

IMG2DATASET = "img2dataset==1.47.0"
IMG2DATASET_VENV = Path.home() / ".cache" / "pass-bench" / "img2dataset-1.47.0"
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def sequential_baseline(urls: list[str]) -> float:
    session = requests.Session()
    start = time.perf_counter()
    for url in urls:
        raw = session.get(url, timeout=30).content
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        img.thumbnail((512, 512), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        hashlib.sha256(buffer.getvalue()).hexdigest()
        str(imagehash.phash(img))
    return time.perf_counter() - start


def img2dataset_command() -> Path:
    """The img2dataset executable of its own virtual environment, installed there if missing."""
    command = IMG2DATASET_VENV / "bin" / "img2dataset"
    if not command.exists():
        print(f"installing {IMG2DATASET} into {IMG2DATASET_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(IMG2DATASET_VENV)], check=True)
        subprocess.run([str(IMG2DATASET_VENV / "bin" / "pip"), "install", "-q", IMG2DATASET], check=True)
    return command


def img2dataset_run(corpus: Served, scratch: Path) -> tuple[float, int]:
    """(seconds, images written) of img2dataset on the corpus: 512 px on the longer side (Lanczos,
    like ours), JPEG quality 90, WebDataset, 2 processes x 16 threads. No pHash: it computes none."""
    command = img2dataset_command()
    url_list, output = scratch / "urls.txt", scratch / "img2dataset"
    url_list.write_text("\n".join(corpus.urls) + "\n")
    # No update checks or telemetry: the benchmark reaches nothing but 127.0.0.1.
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    subprocess.run([str(command), f"--url_list={url_list}", "--input_format=txt", f"--output_folder={output}",
                    "--output_format=webdataset", "--image_size=512", "--resize_mode=keep_ratio_largest",
                    "--resize_only_if_bigger=True", "--downscale_interpolation=lanczos", "--encode_quality=90",
                    "--processes_count=2", "--thread_count=16", "--enable_wandb=False"],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    written = sum(json.loads(path.read_text())["successes"] for path in output.glob("*_stats.json"))
    return elapsed, written


def job_run(corpus: Served, output: Path, extra: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    stats = run([*job_args(corpus, output), "--detectors=none", *extra])
    elapsed = time.perf_counter() - start
    assert stats["accounted"], stats
    return elapsed, stats


@usage_said("end_to_end")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.end_to_end")
    parser.add_argument("--images", type=arguments.count(), default=400)
    parser.add_argument("--skip_img2dataset", action="store_true")
    args = parser.parse_args()
    photos = distinct_photos(args.images)
    count = len(photos)
    with tempfile.TemporaryDirectory() as temporary, served(photos, temporary) as corpus:
        scratch = Path(temporary)
        baseline = sequential_baseline(corpus.urls)
        print(f"images: {count}, mean size {sum(map(len, photos)) // count // 1024} KiB; detectors off")
        print(f"{'sequential loop (baseline)':46s} {count / baseline:7.1f} img/s  {1.0:5.2f}x loop")
        walls = {}
        for label, extra in [("ours, 1 worker, WebDataset", ["--formats=webdataset"]),
                             ("ours, 2 workers, WebDataset", ["--formats=webdataset", *TWO_WORKERS]),
                             ("ours, 2 workers, all 3 formats", TWO_WORKERS)]:
            output = scratch / label.replace(" ", "_").replace(",", "")
            walls[label], stats = job_run(corpus, output, extra)
            print(f"{label:46s} {count / walls[label]:7.1f} img/s  {baseline / walls[label]:5.2f}x loop"
                  f"   (kept {stats['kept']}, peak RSS {stats['peak_rss_mb']:,.0f} MiB)", flush=True)
        webdataset = walls["ours, 2 workers, WebDataset"]
        all_formats = walls["ours, 2 workers, all 3 formats"]
        print(f"all 3 formats / WebDataset only (2 workers): wall ratio {all_formats / webdataset:.2f}")
        if not args.skip_img2dataset:
            seconds, written = img2dataset_run(corpus, scratch)
            print(f"{'img2dataset 1.47.0, 2 processes x 16 threads':46s} {count / seconds:7.1f} img/s  "
                  f"{baseline / seconds:5.2f}x loop   (wrote {written})")
            print(f"ours / img2dataset (2 workers, WebDataset): wall ratio {webdataset / seconds:.2f}")


if __name__ == "__main__":
    main()
