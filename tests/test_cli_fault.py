"""Command-line misuse: one `error:` line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from _train_utils import REPO, subprocess_env


def _main(args, tmp_path, capsys):
    """In-process ``python -m tortoise_lite.train ARGS``: (exit status, stderr)."""
    from tortoise_lite.train import main

    code = main([f"output_dir={tmp_path / 'run'}", *args])
    return code, capsys.readouterr().err


def _run(args, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "tortoise_lite.train", f"output_dir={tmp_path / 'run'}", *args],
        capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(tmp_path / "cache"), timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, needle",
    [
        (["trainer=nope"], "trainer"),  # unknown group option
        (["seed=[1,2"], "seed"),  # unparsable override
        (
            ["+recipe=ljspeech", "data.root=/nonexistent/LJSpeech-1.1"],
            "/nonexistent/LJSpeech-1.1",
        ),  # missing path
        (["+recipe=folder"], "root"),  # mandatory value not given
        (
            ["ckpt_path=/nonexistent/x.ckpt", "data.source.n_utterances=12", "data.source.n_heldout=2"],
            "x.ckpt",
        ),
    ],
)
def test_user_errors_are_one_line(args, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORTOISE_LITE_CACHE", str(tmp_path / "cache"))
    # In-process reruns leave Hydra log handlers on streams pytest has since closed: keep those quiet.
    monkeypatch.setattr(logging, "raiseExceptions", False)
    code, err = _main(args, tmp_path, capsys)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], err[-2000:]


def test_wrong_type_is_one_line_in_a_real_process(tmp_path):
    r = _run(["trainer.max_steps=many"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert any(line.startswith("error:") and "max_steps" in line for line in r.stderr.splitlines()), r.stderr[
        -2000:
    ]


def test_repo_root_is_importable():
    assert (REPO / "tortoise_lite" / "train.py").is_file()
