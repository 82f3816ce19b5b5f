"""The short names of the inpainting model's command lines in a clone of the repository:
`python -m model.train`, `model.evaluate`, `model.compare`, `model.inpaint`, `model.ablate`, `model.prior`
and `model.release` run the commands of `tritonsplat_inpaint.commands`. The library is
`tritonsplat_inpaint`; this folder is not installed (a `model.py` in the working folder
would shadow it: there, use the installed `tritonsplat-train`, `tritonsplat-inpaint`, ...
or `python -m tritonsplat_inpaint.commands.train`)."""
