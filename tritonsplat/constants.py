"""Constants of the contract (docs/design.md), each written once: the specification, both
backends and the binning read them from here."""

CUT_Q = 9.0  # the free rasterizer's 3-sigma ellipse: alpha = 0 where q > 9
NORMALIZED_EPS = 1e-6  # mode "normalized": sum c alpha / (sum alpha + 1e-6)
