"""The torch path: plain-PyTorch implementations that are the specification the Triton
kernels are tested against, and the CPU path."""
