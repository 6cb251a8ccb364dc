"""Tiny real checkpoints for the inference/evaluation tests, trained once per session.

Each is the training app run in-process on the shrunk recipe config of ``_train_utils`` (tiny corpus and
model, two optimizer steps, EMA on). conftest's ``tones_ckpt`` fixture wraps :func:`tiny_checkpoint`;
the cache here (one module object per session) makes every caller share one run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CACHE: dict[str, Path] = {}


def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus cache the autouse fixture of conftest.py gives every test (same path)."""
    return Path(os.environ.get("TORTOISE_LITE_CACHE") or tmp_path_factory.getbasetemp() / "cache")


def tiny_checkpoint(recipe: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of a two-step run of ``+recipe=<recipe>`` (trained on first use in the session)."""
    if recipe in _CACHE:
        return _CACHE[recipe]
    from _train_utils import train_tiny

    out = tmp_path_factory.mktemp(f"ckpt_{recipe}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORTOISE_LITE_CACHE", str(session_cache_dir(tmp_path_factory)))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = train_tiny(out / "run", recipe, ["samples.enabled=false"])
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    _CACHE[recipe] = result.last_checkpoint
    return result.last_checkpoint
