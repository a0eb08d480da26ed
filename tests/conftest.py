import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _pyro_clean_state():
    """Every test starts with an empty param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    yield
    pyro.enable_validation(True)
    torch.set_default_dtype(torch.float32)
