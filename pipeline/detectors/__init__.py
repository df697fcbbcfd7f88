"""Person, face and NSFW detectors: the model registry, preprocessing, output decoders and the
Beam `ModelHandler` that runs them with onnxruntime."""
