"""The 2DGS inpainting model (DESIGN.md section 6). Not built yet: see the issue tracker."""
