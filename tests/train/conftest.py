import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """NOTE: tiny matmuls on a shared 2-core machine run ~10x faster on one thread (no OpenMP hand-offs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
