import os

import torch

# Without a GPU the Triton kernels run under the interpreter. It must be switched on
# before triton.jit decorates them, so before tritonsplat is imported by any test.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the kernel tests run: the GPU's compiled kernels where there is one, the
    interpreter on the CPU otherwise; no kernel test is skipped for want of a GPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
