"""A wheel-installed package composes its configs and trains outside the repository."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _train_utils import REPO, tiny_overrides


@pytest.mark.slow
def test_wheel_install_trains_outside_repo(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, timeout=600)  # fmt: skip
    target = tmp_path / "site"
    wheel = next(wheels.glob("tortoise_lite-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    assert (target / "tortoise_lite" / "conf" / "train.yaml").is_file()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "TORTOISE_LITE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    args = tiny_overrides("speech", work / "run")
    r = subprocess.run([sys.executable, "-c", "import tortoise_lite.train as t, sys; print(t.__file__); "
                        "sys.exit(t.main(sys.argv[1:]))", *args],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert str(target) in r.stdout.splitlines()[0]
    assert (work / "run" / "checkpoints" / "last.ckpt").is_file()
