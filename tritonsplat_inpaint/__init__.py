"""The 2DGS inpainting model with DINO semantic alignment (docs/design.md, section 6),
built on `tritonsplat.rasterize_patches`.

The library: `config` (the configuration tree and presets), `masks`, `data` (photographs
and crops), `dino` (the frozen backbone and its adapter), `blocks` (AdaLN), `network`
(the model and `build_model`), `classical` (the classical fills), `losses`,
`checkpoint` (atomic saves, `load_model`, the released checkpoint `RELEASED`), `images`
(reading and writing photographs and masks), `infer` (scale-adaptive, windowed
inpainting of any photograph), `training` (the training loop) and `evaluation`.

The command lines, in `commands/`, import the library and never each other: `train`,
`evaluate`, `inpaint`, `ablate`, `prior`, `release` (installed as `tritonsplat-train`,
..., and in a clone as `python -m model.train`, ...).
"""
