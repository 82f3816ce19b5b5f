"""The inpainting model's command lines: each parses its arguments and calls the library
(`tritonsplat_inpaint`); none imports another."""
