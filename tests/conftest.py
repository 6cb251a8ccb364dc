import os

import pytest
import torch

# Two shared cores: keep intra-op threads low so parallel test processes do not thrash.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Corpora and caches go to a per-session temp dir unless a test asks for another."""
    if "TORTOISE_LITE_CACHE" not in os.environ:
        monkeypatch.setenv("TORTOISE_LITE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
