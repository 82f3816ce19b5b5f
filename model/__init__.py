"""The 2DGS inpainting model with DINO semantic alignment (DESIGN.md section 6):
configuration, masks, data, the frozen DINO and its adapter, AdaLN blocks, the Gaussian
head rendered by tritonsplat.rasterize_patches, losses, checkpoints, and the command
lines `model.train`, `model.evaluate` and `model.inpaint`."""
