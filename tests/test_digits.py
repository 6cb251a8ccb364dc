"""The FSDD digit classifier (tortoise_lite.evaluation.digits) on real recordings.

FSDD is not part of the package: the tests look for it at ``$TL_FSDD`` or ``../shared/data/fsdd`` next to
the repository and skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tortoise_lite.audio import MelSpec
from tortoise_lite.evaluation import digits

FSDD = Path(os.environ.get("TL_FSDD", Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
needs_fsdd = pytest.mark.skipif(
    not (FSDD / "recordings").is_dir(), reason=f"FSDD recordings not found at {FSDD} (set TL_FSDD)"
)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(digits.FsddError, match=str(tmp_path / "nope")):
        digits.fsdd_files(tmp_path / "nope")
    (tmp_path / "recordings").mkdir()
    with pytest.raises(digits.FsddError, match="no FSDD recordings"):
        digits.fsdd_files(tmp_path)


def test_fit_window_centres_and_removes_level():
    m = torch.full((4, 10), -5.0)
    m[:, 3:6] = 1.0
    x = digits.fit_window(m, 20, floor=-12.0)
    assert x.shape == (4, 20) and float(x.max()) == 0.0
    assert torch.equal(digits.fit_window(m + 3.0, 20, floor=-12.0), x)  # gain-free


@needs_fsdd
def test_classifier_beats_chance_on_held_out_takes():
    """Trained on takes 0-4 through mel + Griffin-Lim, tested on unseen takes (every 9th of 5-49)."""
    torch.set_num_threads(1)
    spec = MelSpec.preset("hifigan_22k_80")
    from tortoise_lite.vocoders import GriffinLim

    vocoder = GriffinLim(spec, n_iter=16)
    train = digits.fsdd_files(FSDD, takes=digits.TEST_TAKES)
    clf = digits.train_classifier(
        digits.recording_mels(train, spec, vocoder), [f.digit for f in train], spec, seed=0
    )
    held = digits.fsdd_files(FSDD, takes=range(5, 50, 9))
    pred = clf.predict(digits.recording_mels(held, spec, vocoder))
    acc = float((pred == torch.tensor([f.digit for f in held])).float().mean())
    assert acc > 0.6, f"accuracy {acc:.2f} on {len(held)} held-out recordings (chance 0.10)"
