"""Tiny real checkpoints for the inference/evaluation tests, trained once per session.

Each is the training app run in-process on the shrunk recipe config of ``_train_utils`` (tiny corpus and
model, two optimizer steps, EMA on). Test modules wrap :func:`tiny_checkpoint` in their own
session-scoped fixture; the cache here (one module object per session) makes every module share one run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

_CACHE: dict[str, Path] = {}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only adds synchronization (and stalls badly when the
    cores are shared), so these tests run single-threaded and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus cache the autouse fixture of conftest.py gives every test (same path)."""
    return Path(os.environ.get("TORTOISE_LITE_CACHE") or tmp_path_factory.getbasetemp() / "cache")


def tiny_checkpoint(recipe: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of a two-step run of ``+recipe=<recipe>`` (trained on first use in the session)."""
    if recipe in _CACHE:
        return _CACHE[recipe]
    from _train_utils import train_tiny

    out = tmp_path_factory.mktemp(f"ckpt_{recipe}")
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("TORTOISE_LITE_CACHE", str(session_cache_dir(tmp_path_factory)))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = train_tiny(out / "run", recipe, ["samples.enabled=false"])
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    _CACHE[recipe] = result.last_checkpoint
    return result.last_checkpoint
