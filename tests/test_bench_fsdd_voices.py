"""``python -m tortoise_lite.bench fsdd_voices``: zero-shot voice on a real FSDD speaker left out of training.

FSDD is not part of the package: the test looks for it at ``$TORTOISE_LITE_FSDD`` (or ``$TL_FSDD``) or
``../shared/data/fsdd`` next to the repository, and skips without it. It runs a tiny version (a tiny model
for 4 steps on takes 5-6, two digit words, one seed) and checks the report, not the figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _train_utils import TINY, TINY_MODEL

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
FSDD = Path(os.environ.get("TORTOISE_LITE_FSDD") or os.environ.get("TL_FSDD") or _DEFAULT)
pytestmark = pytest.mark.skipif(
    not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD} (set TORTOISE_LITE_FSDD)"
)
HELDOUT = "yweweler"


def test_fsdd_voices_tiny_run_never_trains_on_the_heldout_speaker(tmp_path):
    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.bench import main

    tiny = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.max_time"))]
    out = tmp_path / "bench"
    argv = [
        "fsdd_voices",
        "--data",
        str(FSDD),
        "--heldout-speaker",
        HELDOUT,
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--text",
        "chars",
        "--train-takes",
        "5-6",
        "--gt-takes",
        "8-8",
        "--digits",
        "2",
        "--seeds",
        "1",
        "--verifier-steps",
        "10",
        "--no-ceiling",
        *tiny,
        *TINY_MODEL["unet1d"],
        "model.voice_dim=16",
        "model.voice_channels=16",
        "data.val_fraction=0.1",
    ]
    assert main(argv) == 0
    report = json.loads((out / "fsdd_voices.json").read_text())
    assert (out / "fsdd_voices.png").is_file()

    # the held-out speaker was never trained on: not in the corpus, not among the checkpoint's voices
    assert not (out / f"corpus_without_{HELDOUT}" / HELDOUT).exists()
    tts = TextToSpeech.from_checkpoint(report["checkpoint"])
    assert tts.voice_dim == 16
    assert HELDOUT not in tts.trained_voices and HELDOUT not in tts.speakers
    assert sorted(tts.trained_voices) == report["trained_speakers"]
    assert report["heldout_speaker"] == HELDOUT and report["training"]["steps"] == 4

    speakers = report["speakers"]
    assert HELDOUT in speakers and len(speakers) == len(report["trained_speakers"]) + 1
    assert report["chance"] == pytest.approx(1 / len(speakers))
    v = report["verifier"]
    assert 0.0 <= v["eer_all_speakers_takes_0_4"] <= 1.0 and HELDOUT not in v["training_speakers"]
    assert report["settings"]["words"] == ["zero", "one"]
    assert all(len(c) == 3 for c in report["settings"]["reference_clips"].values())
    for s in speakers:
        assert 0.0 <= report["ground_truth"][s]["identification"] <= 1.0
        for variant in ("refs", "refs_levelled"):
            g = report["generated"][variant][s]
            assert g["n"] == 2 and sum(g["identified_as"].values()) == 2
            assert set(g) >= {"identification", "cosine", "digit_accuracy"}
    assert set(report["generated"]["no_voice"]) == {HELDOUT}
    for group in ("heldout", "trained"):
        assert set(report[group]) >= {
            "identification",
            "cosine",
            "digit_accuracy",
            "ground_truth_identification",
            "ground_truth_cosine",
            "digit_ceiling",
        }
    assert report["heldout"]["speakers"] == [HELDOUT]
    assert report["digits"]["ceiling"] is None  # --no-ceiling
    assert (out / f"{HELDOUT}_generated_zero.wav").is_file()
