"""Checkpoint safety: weights_only refusal of code-carrying pickles, clear errors for missing, foreign,
truncated and mismatched files, and atomic saves (a kill during a save keeps the previous file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from _train_utils import subprocess_env, train_tiny

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    load_text_to_mel,
    safe_instantiate,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt_run")
    result = train_tiny(out / "run")
    return result.last_checkpoint


class _RunsCode:
    """Unpickling this calls os.system: what weights_only=True must refuse to do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(ckpt, tmp_path):
    marker = tmp_path / "pwned"
    d = torch.load(ckpt, weights_only=True)
    d["tortoise_lite"]["evil"] = _RunsCode(marker)
    bad = tmp_path / "evil.ckpt"
    torch.save(d, bad)
    with pytest.raises(UnsafeCheckpointError, match="weights_only"):
        load_text_to_mel(bad)
    assert not marker.exists()


def test_config_target_outside_allowlist_is_refused(ckpt, tmp_path):
    d = torch.load(ckpt, weights_only=True)
    d["tortoise_lite"]["model"]["denoiser"]["_target_"] = "os.system"
    bad = tmp_path / "target.ckpt"
    torch.save(d, bad)
    with pytest.raises(UnsafeCheckpointError, match=r"os\.system"):
        load_text_to_mel(bad)
    with pytest.raises(UnsafeCheckpointError, match="not a tortoise_lite class"):
        safe_instantiate({"_target_": "subprocess.Popen", "args": ["true"]})


def test_missing_foreign_and_truncated_files(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_text_to_mel(tmp_path / "nope.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="no 'tortoise_lite'"):
        load_text_to_mel(foreign)
    data = ckpt.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_text_to_mel(cut)


def test_melspec_and_vocabulary_mismatch_named(ckpt):
    model, info = load_text_to_mel(ckpt, expected_mel_spec=info_mel(ckpt))
    other = MelSpec.preset("bigvgan_24k_100")
    with pytest.raises(CheckpointMismatchError, match="sample_rate") as e:
        load_text_to_mel(ckpt, expected_mel_spec=other)
    assert "24000" in str(e.value) and "22050" in str(e.value)
    vocab = info.tokenizer.to_dict()
    vocab["symbols"] = list(vocab["symbols"])[:-1] + ["@@"]
    with pytest.raises(CheckpointMismatchError, match="@@"):
        load_text_to_mel(ckpt, expected_tokenizer=vocab)
    load_text_to_mel(ckpt, expected_tokenizer=info.tokenizer)  # the same vocabulary passes


def info_mel(path):
    return load_text_to_mel(path)[1].mel_spec


def test_kill_during_checkpoint_save_keeps_previous(ckpt, tmp_path):
    """SIGKILL a process while Lightning's atomic save is writing over an existing checkpoint."""
    target = tmp_path / "last.ckpt"
    target.write_bytes(ckpt.read_bytes())
    script = textwrap.dedent(f"""
        import time, torch
        from fsspec.implementations.local import LocalFileOpener
        from lightning.fabric.utilities.cloud_io import _atomic_save
        real_write = LocalFileOpener.write
        def slow_write(self, data):
            real_write(self, data[: len(data) // 3])  # a third of the new file is on disk...
            print("writing", flush=True)
            time.sleep(60)  # ...when the process is killed
        LocalFileOpener.write = slow_write
        _atomic_save({{"state_dict": {{"w": torch.randn(500, 500)}}}}, {str(target)!r})
    """)
    p = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    )
    assert p.stdout.readline().strip() == "writing"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    model, info = load_text_to_mel(target)  # the previous checkpoint is intact
    assert info.global_step == 2
