"""Every recipe composes, and runs two steps on a tiny model into tmp_path (with a real checkpoint)."""

from __future__ import annotations

import pytest
import torch
from _train_utils import compose_train, make_wav_dataset, tiny_overrides

from tortoise_lite.checkpoint import load_text_to_mel, read_checkpoint
from tortoise_lite.paths import config_dir
from tortoise_lite.training.app import run, summary

RECIPES = ["speech", "speech2d", "tones", "voices", "ljspeech", "folder", "text_to_audio"]


def test_every_recipe_file_composes():
    names = sorted(p.stem for p in (config_dir() / "recipe").glob("*.yaml"))
    assert set(RECIPES) | {"vocoder"} <= set(names)
    for name in names:
        cfg = compose_train([f"+recipe={name}"])
        assert cfg.task in ("text_to_mel", "vocoder")
        if cfg.task == "text_to_mel":
            assert cfg.run_name == name
            assert "_target_" in cfg.model and "_target_" in cfg.data


@pytest.mark.parametrize(
    "recipe",
    [
        pytest.param(r, marks=pytest.mark.slow) if r in ("text_to_audio", "speech2d", "folder") else r
        for r in RECIPES
    ],
)
def test_recipe_runs_two_steps(recipe, tmp_path):
    extra = []
    if recipe in ("ljspeech", "folder"):
        root = make_wav_dataset(tmp_path / "dataset", recipe)
        extra.append(f"data.root={root}")
    if recipe == "speech":
        extra += ["samples.enabled=true", "logger=tensorboard"]
    cfg = compose_train(tiny_overrides(recipe, tmp_path / "run", extra))
    result = run(cfg)
    assert result.global_step == 2
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert result.last_checkpoint == last and last.is_file()
    ckpt = read_checkpoint(last)  # weights_only=True
    meta = ckpt["tortoise_lite"]
    assert meta["config"]["run_name"] == recipe
    assert set(meta) >= {"mel_spec", "tokenizer", "stats", "model", "package_version"}
    assert "current_model_state" in ckpt  # EMA in state_dict, raw weights beside it
    model, info = load_text_to_mel(last)
    assert info.global_step == 2 and info.used_ema
    assert not model.training
    raw, _ = load_text_to_mel(last, use_ema=False)
    ema_w = dict(model.named_parameters())
    assert any(not torch.equal(p, ema_w[n]) for n, p in raw.named_parameters())
    assert "checkpoint" in summary(result)
    if recipe == "speech":
        wavs = sorted((tmp_path / "run" / "samples" / "final").glob("*.wav"))
        pngs = sorted((tmp_path / "run" / "samples" / "final").glob("*.png"))
        assert len(wavs) == 1 and len(pngs) == 1
        assert list((tmp_path / "run" / "tb").rglob("events.out.tfevents.*"))
