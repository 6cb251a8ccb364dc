"""Training faults: non-finite losses are skipped and logged; too many in a row stop the run with a clear
error and a checkpoint. (Kill-and-resume lives in test_train_resume.py / the slow test below.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _train_utils import subprocess_env, tiny_overrides, train_tiny

from tortoise_lite.checkpoint import load_text_to_mel
from tortoise_lite.training.module import NonFiniteLossError


def test_nonfinite_losses_skip_then_stop_with_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORTOISE_LITE_CACHE", str(tmp_path / "cache"))  # this test corrupts its corpus
    first = train_tiny(tmp_path / "ok")  # generates + prepares the corpus, healthy run
    assert first.global_step == 2
    mels = sorted((tmp_path / "cache").rglob("*.npy"))
    mels = [p for p in mels if np.load(p).ndim == 2 and np.load(p).shape[0] == 80]
    assert mels
    for p in mels:  # corrupted features on disk: every loss becomes NaN
        a = np.load(p)
        a[:, :3] = np.nan
        np.save(p, a)
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps had a NaN/inf loss"):
        train_tiny(tmp_path / "bad", extra=["optim.max_nonfinite_steps=3", "trainer.max_steps=10"])
    ckpt = tmp_path / "bad" / "checkpoints" / "on_exception.ckpt"
    model, info = load_text_to_mel(ckpt)
    assert info.global_step == 2  # steps 0-1 skipped (Lightning counts them); the third raised
    assert all(bool(p.isfinite().all()) for p in model.parameters())  # no NaN update was applied
    csv = next((tmp_path / "bad" / "csv").rglob("metrics.csv")).read_text()
    assert "train/nonfinite_steps" in csv


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_reaches_same_step(tmp_path):
    out = tmp_path / "run"
    env = subprocess_env(tmp_path / "cache")
    args = [a for a in tiny_overrides("speech", out) if not a.startswith("trainer.max_steps")]
    args += ["trainer.max_steps=20", "checkpoint.every_n_train_steps=2", "trainer.val_check_interval=2"]
    cmd = [sys.executable, "-m", "tortoise_lite.train", *args]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt_dir = out / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not (ckpt_dir / "last.ckpt").exists() and p.poll() is None:
        time.sleep(0.2)
    assert p.poll() is None, p.stderr.read()[-3000:]  # still training when killed
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    load_text_to_mel(ckpt_dir / "last.ckpt")  # not corrupted by the kill
    r = subprocess.run([*cmd, "ckpt_path=last"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    _, info = load_text_to_mel(ckpt_dir / "last.ckpt")
    assert info.global_step == 20
    for c in ckpt_dir.glob("*.ckpt"):
        load_text_to_mel(c)
