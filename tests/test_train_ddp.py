"""DDP on CPU (2 gloo processes): same validation loss as one process, disjoint items per rank."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _train_utils import subprocess_env, tiny_overrides, train_tiny


@pytest.mark.slow
def test_ddp_cpu_matches_single_process(tmp_path):
    env = subprocess_env(tmp_path / "cache")
    single = train_tiny(tmp_path / "single", extra=["logger=csv"])
    ckpt = single.last_checkpoint
    losses = {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / f"val_{trainer}"
        args = tiny_overrides(
            "speech",
            out,
            [
                f"trainer={trainer}",
                "mode=validate",
                f"ckpt_path={ckpt}",
                "trainer.limit_val_batches=null",
                "rich_progress=false",
            ],
        )
        r = subprocess.run(
            [sys.executable, "-m", "tortoise_lite.train", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        m = re.search(r"val/loss\s+│\s+([0-9.eE+-]+)", r.stdout)  # Lightning's results table
        assert m, r.stdout[-3000:]
        losses[trainer] = float(m.group(1))
    assert losses["ddp_cpu"] == pytest.approx(losses["cpu"], rel=1e-4)
    # Two DDP training steps: every rank sees disjoint items.
    out = tmp_path / "ddp_train"
    args = tiny_overrides("speech", out, ["trainer=ddp_cpu", "record_items=true", "rich_progress=false"])
    r = subprocess.run(
        [sys.executable, "-m", "tortoise_lite.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    seen = [
        set(x for ln in (out / f"items_rank{k}.txt").read_text().splitlines() for x in ln.split()[2:])
        for k in (0, 1)
    ]
    assert seen[0] and seen[1] and not (seen[0] & seen[1])
