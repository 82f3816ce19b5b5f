"""The Triton backend: the kernels (`kernels.py`), their launchers and launch table
(`launch.py`), and one module per operation turning images into units and back."""
