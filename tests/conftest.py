import os

import pytest
import torch

# Test tensors are small: a second intra-op thread only adds synchronization, and OpenMP threads stall
# badly when the two cores are shared with other processes (DDP ranks, subprocess CLI tests).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Corpora and caches go to a per-session temp dir unless a test asks for another."""
    if "TORTOISE_LITE_CACHE" not in os.environ:
        monkeypatch.setenv("TORTOISE_LITE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tones_ckpt(tmp_path_factory):
    """A real two-step checkpoint of ``+recipe=tones`` (tiny model), trained once per session."""
    from fixtures_ckpt import tiny_checkpoint

    return tiny_checkpoint("tones", tmp_path_factory)
