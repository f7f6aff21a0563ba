"""U-Net segmentation: the model (unet), the shared training machinery (training) and inference (inference)."""
