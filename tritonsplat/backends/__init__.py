"""The two implementations of every operation: `torch` (plain PyTorch, the CPU path) and
`triton` (the fused kernels). Each has one module per operation with `forward` and
`backward`; `tritonsplat.ops` picks one by name."""
