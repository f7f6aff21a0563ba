"""U-Net segmentation: the model (unet.py), its object head (objects.py), object-centred training crops (crops.py),
segmentation with the per-object vote and crop refinement (segment.py, postprocess.py); the trainer (train.py) and
the seed's inference entry points (inference_*.py, thin wrappers of pipeline/cli.py).

Imports data/ and engine/ only: no other model folder (tests/test_layout.py)."""
