"""Ground-truth-aligned mels (tortoise_lite.training.aligned_mels) and the vocoder fine-tune recipe on them."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from tortoise_lite.checkpoint import load_text_to_mel
from tortoise_lite.paths import config_dir
from tortoise_lite.training.aligned_mels import speech_pairs
from tortoise_lite.training.vocoder_module import build_and_fit
from tortoise_lite.vocoders import VocosVocoder, load_vocoder, save_checkpoint


@pytest.fixture(scope="module")
def speech_ckpt(tmp_path_factory):
    from fixtures_ckpt import tiny_checkpoint

    return tiny_checkpoint("speech", tmp_path_factory)


def test_pairs_are_the_corpus_audio_with_aligned_generated_mels(speech_ckpt):
    model, _ = load_text_to_mel(speech_ckpt)
    assert model.pitch  # the speech recipe's model: the real pitch is given too
    pairs = speech_pairs(speech_ckpt, steps=2, limit=3, progress=False)
    assert len(pairs) == 3
    spec = model.mel_spec
    for mel, wav in pairs:
        assert mel.shape == (spec.n_mels, spec.num_frames(wav.shape[-1]))
        assert torch.isfinite(mel).all() and wav.abs().max() > 0.01
        assert (mel - spec(wav)).abs().mean() > 1e-3  # generated, not the real mel
    again = speech_pairs(speech_ckpt, steps=2, limit=3, progress=False)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(pairs, again))  # seeded
    other_seed = speech_pairs(speech_ckpt, steps=2, limit=1, seed=5, progress=False)
    assert not torch.equal(other_seed[0][0], pairs[0][0])
    same = speech_pairs(speech_ckpt, mel_spec=spec, steps=2, limit=1, progress=False)
    assert torch.equal(same[0][0], pairs[0][0])
    from tortoise_lite.audio.mel import MelSpec, MelSpecMismatchError

    with pytest.raises(MelSpecMismatchError, match="fmax"):  # a vocoder of another mel setting
        speech_pairs(speech_ckpt, mel_spec=MelSpec(**{**spec.to_dict(), "fmax": 4000.0}), progress=False)


def test_pairs_of_a_model_without_pitch_and_a_missing_checkpoint(tones_ckpt, tmp_path):
    model, _ = load_text_to_mel(tones_ckpt)
    assert not model.pitch  # the tones corpus has exact durations too; only the durations are given
    ((mel, wav),) = speech_pairs(tones_ckpt, steps=1, limit=1, progress=False)
    assert mel.shape == (model.mel_spec.n_mels, model.mel_spec.num_frames(wav.shape[-1]))
    with pytest.raises(Exception, match="nope.ckpt"):
        speech_pairs(tmp_path / "nope.ckpt", progress=False)


def test_finetune_recipe_trains_on_the_pairs(speech_ckpt, tmp_path):
    spec = load_text_to_mel(speech_ckpt)[0].mel_spec
    init = tmp_path / "init.pt"
    save_checkpoint(
        init, VocosVocoder(spec, dim=32, intermediate_dim=64, num_layers=2, mel_prior=True, phase="pghi")
    )
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "+recipe=vocoder_pghi_finetune",
                f"output_dir={tmp_path / 'run'}",
                f"vocoder_recipe.init_from={init}",
                f"vocoder_recipe.data.pairs_args.ckpt={speech_ckpt}",
                "vocoder_recipe.data.pairs_args.steps=2",
                "+vocoder_recipe.data.pairs_args.limit=4",
                "+vocoder_recipe.data.pairs_args.progress=false",
                "vocoder_recipe.data.segment_frames=8",
                "vocoder_recipe.data.batch_size=2",
                "vocoder_recipe.data.val_items=1",
                "vocoder_recipe.data.val_seconds=0.5",
                "vocoder_recipe.trainer.max_time=null",
                "vocoder_recipe.trainer.max_steps=3",
                "vocoder_recipe.trainer.val_check_interval=3",
                "vocoder_recipe.trainer.enable_progress_bar=false",
                "vocoder_recipe.trainer.logger=false",
            ],
        )
    path = build_and_fit(cfg)
    tuned, start = load_vocoder(path), load_vocoder(init)
    assert tuned.arch["phase"] == "pghi"
    changed = [not torch.equal(a, b) for a, b in zip(tuned.parameters(), start.parameters())]
    assert any(changed)


def test_finetune_without_the_vocoder_to_tune_names_it(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tortoise_lite.train",
            "+recipe=vocoder_pghi_finetune",
            f"output_dir={tmp_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert "init_from=outputs/vocoder_pghi/vocoder.pt: no such vocoder checkpoint" in r.stderr
    assert "Traceback" not in r.stderr
