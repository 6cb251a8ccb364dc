"""Real-recording handling for small corpora: prepare's trimming, loudness and std floor; the
``small_corpus`` recipe on a tiny folder; the FSDD folder layout the benchmark builds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _train_utils import TINY, TINY_MODEL, compose_train

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.manifest import load_manifest
from tortoise_lite.data.preparation import PrepareLimits, prepare_dataset
from tortoise_lite.text.tokenizers import CharTokenizer

FSDD = Path(os.environ.get("TL_FSDD", Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))


def _narrowband_folder(root: Path, n: int = 6) -> Path:
    """8 kHz 'recordings' of two speakers at levels 20 dB apart, with uneven leading/trailing silence."""
    rng = np.random.default_rng(0)
    sr = 8000
    for i in range(n):
        spk = "loud" if i % 2 == 0 else "quiet"
        gain = 0.5 if spk == "loud" else 0.05
        t = np.arange(int(0.4 * sr)) / sr
        voice = sum(np.sin(2 * np.pi * k * (120 + 10 * i) * t) / k for k in range(1, 8)) * np.hanning(len(t))
        lead, tail = np.zeros(int((0.1 + 0.2 * (i % 3)) * sr)), np.zeros(int(0.3 * sr))
        x = np.concatenate([lead, gain * voice / np.abs(voice).max(), tail]) + 1e-4 * rng.standard_normal(
            len(lead) + len(t) + len(tail)
        )
        (root / spk).mkdir(parents=True, exist_ok=True)
        sf.write(root / spk / f"u{i}.wav", x.astype("float32"), sr, subtype="PCM_16")
        (root / spk / f"u{i}.txt").write_text(f"word {i}")
    return root


def test_prepare_trims_levels_and_floors_std(tmp_path):
    root = _narrowband_folder(tmp_path / "data")
    items = load_manifest(root)
    spec = MelSpec.preset("hifigan_22k_80")
    plain = prepare_dataset(items, spec, CharTokenizer(), tmp_path / "out", progress=False)
    limits = PrepareLimits(trim_db=40.0, loudness_dbfs=-23.0, std_floor=1.0)
    clean = prepare_dataset(items, spec, CharTokenizer(), tmp_path / "out", limits=limits, progress=False)
    # the conditioned mels live beside the plain ones (a different cache key), shorter: silence trimmed
    assert {e.mel.split("/")[1] for e in plain.entries} != {e.mel.split("/")[1] for e in clean.entries}
    for a, b in zip(plain.entries, clean.entries):
        assert b.frames < a.frames - 0.3 * spec.frames_per_second
    # both speakers at one level: their mean log-mel energy differs by far less than the 20 dB (4.6 nats)
    level = {}
    for e in clean.entries:
        m = np.load(clean.mel_path(e))
        level.setdefault(e.speaker, []).append(float(np.log(np.exp(m).mean(0)).max()))
    assert abs(np.mean(level["loud"]) - np.mean(level["quiet"])) < 1.0
    # 8 kHz sources: the bins above 4 kHz are near-empty; the floor keeps their std at 1
    assert float(plain.stats.std[-10:].max()) < 1.0
    assert float(clean.stats.std.min()) >= 1.0
    meta = json.loads((clean.view / "meta.json").read_text())
    assert meta["limits"]["trim_db"] == 40.0


def test_prepare_limits_reject_bad_conditioning():
    with pytest.raises(ValueError, match="trim_db"):
        PrepareLimits(trim_db=0)
    with pytest.raises(ValueError, match="loudness_dbfs"):
        PrepareLimits(loudness_dbfs=3)
    with pytest.raises(ValueError, match="std_floor"):
        PrepareLimits(std_floor=-1)
    assert PrepareLimits().conditioning() is None  # the default prepares audio as it is


def test_small_corpus_recipe_runs_two_steps(tmp_path):
    from tortoise_lite.checkpoint import load_text_to_mel
    from tortoise_lite.training.app import run

    root = _narrowband_folder(tmp_path / "data", n=8)
    cfg = compose_train(
        [
            "+recipe=small_corpus",
            f"output_dir={tmp_path / 'run'}",
            f"data.root={root}",
            f"data.source.prepare_dir={tmp_path / 'prepared'}",
            "text=chars",
            *TINY,
            "data.val_fraction=0.25",
            *TINY_MODEL["unet1d"],
            "text.encoder.dim=32",
            "text.encoder.depth=1",
            "text.encoder.heads=2",
        ]
    )
    assert cfg.trainer.max_steps == 2 and cfg.model.prior_residual
    result = run(cfg)
    assert result.global_step == 2
    model, info = load_text_to_mel(result.last_checkpoint)
    assert info.speakers == ["loud", "quiet"] and model.n_speakers == 2
    assert float(info.stats.std.min()) >= 1.0
    mel, n = model.generate(texts=["word 3"], speaker=torch.tensor([1]), steps=2, seed=0)
    assert torch.isfinite(mel).all() and int(n[0]) > 0


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD} (set TL_FSDD)")
def test_fsdd_layout_for_the_recipe(tmp_path):
    from tortoise_lite.benchmarks.fsdd import build_corpus
    from tortoise_lite.evaluation.digits import DIGIT_WORDS

    out = build_corpus(FSDD, tmp_path / "corpus", takes=range(5, 7))
    items = load_manifest(out)
    speakers = {it.speaker for it in items}
    assert len(speakers) >= 2 and len(items) == len(speakers) * 10 * 2
    for it in items:
        assert it.text == DIGIT_WORDS[int(Path(it.audio).name[0])]
        assert int(Path(it.audio).stem.split("_")[-1]) in (5, 6)
