"""The torch backend: plain PyTorch, the CPU path, fast enough to train on and
`torch.compile`-friendly; tested against `tritonsplat.spec` like the Triton backend."""
