"""`python -m tortoise_lite.prepare` killed with SIGKILL mid-way, then run again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tortoise_lite.data.cache import load_npy

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two interpreter start-ups (torch, librosa): ~10-25 s on 2 cores
def test_prepare_cli_killed_then_rerun(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    sr = 22050
    # enough items that the kill lands mid-way: with 24, a quiet machine wrote them all before the kill arrived
    n = 240
    for k in range(n):
        t = np.arange(int(0.5 * sr)) / sr
        sf.write(ds / f"u{k:03d}.wav", (0.3 * np.sin(2 * np.pi * (150 + 5 * k) * t)).astype(np.float32), sr)
        (ds / f"u{k:03d}.txt").write_text(f"utterance number {k}.")
    (ds / "broken.wav").write_bytes(b"RIFF\x00\x00")
    (ds / "broken.txt").write_text("broken")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "tortoise_lite.prepare",
        "data=folder",
        "text=chars",
        f"data.source.path={ds}",
        f"data.source.prepare_dir={out}",
        "data.progress=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(list(out.rglob("*.npy"))) < 3 and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(out.rglob("meta.json"))
    done = list(out.rglob("*.npy"))
    assert 3 <= len(done) < n
    for f in done:  # what exists is complete
        assert load_npy(f).shape[0] == 80
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{n} of {n + 1} items usable, 1 skipped" in res.stdout
    assert "skipped [unreadable] broken" in res.stdout or "skipped [truncated] broken" in res.stdout
    assert len(list(out.rglob("*.npy"))) == n
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
