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


def tiny_checkpoint(
    recipe: str,
    tmp_path_factory: pytest.TempPathFactory,
    extra: list[str] | None = None,
    key: str | None = None,
) -> Path:
    """``last.ckpt`` of a two-step run of ``+recipe=<recipe>`` (trained on first use in the session);
    ``extra`` overrides make another model, cached under ``key``."""
    key = key or recipe
    if key in _CACHE:
        return _CACHE[key]
    from _train_utils import train_tiny

    out = tmp_path_factory.mktemp(f"ckpt_{key}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORTOISE_LITE_CACHE", str(session_cache_dir(tmp_path_factory)))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = train_tiny(out / "run", recipe, ["samples.enabled=false", *(extra or [])])
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    _CACHE[key] = result.last_checkpoint
    return result.last_checkpoint


# A voice model at test size: the speech corpus's eSpeak voices with two reference clips per item, a
# 16-wide reference encoder and no speaker table (the voice comes from the references only).
TINY_VOICE = ["data.references=2", "model.voice_dim=16", "model.voice_channels=16", "model.n_speakers=0"]


def tiny_voice_checkpoint(tmp_path_factory: pytest.TempPathFactory, seed: int | None = None) -> Path:
    """``last.ckpt`` of a two-step voice model (``seed``: another initialization, another encoder)."""
    extra = [*TINY_VOICE, *([f"seed={seed}"] if seed is not None else [])]
    return tiny_checkpoint("speech", tmp_path_factory, extra, key=f"voices_{seed}")
