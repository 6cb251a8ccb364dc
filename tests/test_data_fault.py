"""Corpus generation and prepare, interrupted (exception mid-way, SIGKILL) and run again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tortoise_lite.data.preparation as prep_mod
from tortoise_lite.audio import MelSpec
from tortoise_lite.data.cache import load_npy
from tortoise_lite.data.corpora import tones
from tortoise_lite.data.manifest import load_manifest
from tortoise_lite.data.preparation import prepare_dataset
from tortoise_lite.text.tokenizers import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
# the package re-exports the generator function under the module's name: take the module itself
tones_mod = sys.modules["tortoise_lite.data.corpora.tones"]


def _no_temp_left(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_corpus_generation_interrupted_by_exception_then_rerun(tmp_path, monkeypatch):
    real = tones_mod.save_wav
    calls = {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("injected")
        return real(*a, **k)

    monkeypatch.setattr(tones_mod, "save_wav", failing)
    with pytest.raises(KeyboardInterrupt):
        tones(n_sequences=8, n_heldout=2, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == [] or _no_temp_left(tmp_path)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # no final folder
    monkeypatch.setattr(tones_mod, "save_wav", real)
    c = tones(n_sequences=8, n_heldout=2, cache_dir=tmp_path, progress=False)
    assert len(c.items()) == 8 and _no_temp_left(tmp_path)
    clean = tones(n_sequences=8, n_heldout=2, cache_dir=tmp_path / "clean", progress=False)
    assert c.manifest.read_text() == clean.manifest.read_text()


def test_corpus_generation_killed_then_rerun(tmp_path):
    code = (
        "from tortoise_lite.data.corpora import tones; "
        f"tones(n_sequences=3000, n_heldout=2, cache_dir={str(tmp_path)!r}, progress=False)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list(tmp_path.glob(".*/wavs/*.wav"))) < 20:
            time.sleep(0.05)
        assert proc.poll() is None, "generation finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # never a partial corpus
    c = tones(n_sequences=30, n_heldout=2, cache_dir=tmp_path, progress=False)
    assert len(c.items()) == 30


def _dataset(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sr = 22050
    for k in range(n):
        t = np.arange(int(0.4 * sr)) / sr
        sf.write(
            root / f"u{k:03d}.wav", (0.3 * np.sin(2 * np.pi * (200 + 10 * k) * t)).astype(np.float32), sr
        )
        (root / f"u{k:03d}.txt").write_text(f"utterance {k}")


def test_prepare_interrupted_by_exception_resumes_without_recomputing(tmp_path, monkeypatch):
    _dataset(tmp_path / "ds", 8)
    items = load_manifest(tmp_path / "ds")
    real = prep_mod._compute_mel
    calls = {"n": 0}

    def counting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected failure")
        return real(*a, **k)

    monkeypatch.setattr(prep_mod, "_compute_mel", counting)
    with pytest.raises(RuntimeError, match="injected"):
        prepare_dataset(items, MelSpec(), CharTokenizer(), tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("meta.json"))  # no complete view
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 4
    calls["n"] = 100  # no more failures
    p = prepare_dataset(items, MelSpec(), CharTokenizer(), tmp_path / "out", progress=False)
    assert calls["n"] == 104  # only the 4 missing mels were computed
    fresh = prepare_dataset(items, MelSpec(), CharTokenizer(), tmp_path / "fresh", progress=False)
    for a, b in zip(p.entries, fresh.entries):
        assert np.array_equal(load_npy(p.mel_path(a)), load_npy(fresh.mel_path(b)))
    assert abs(p.stats.global_mean - fresh.stats.global_mean) < 1e-9 and _no_temp_left(tmp_path / "out")
