"""TextToSpeech: loading, batched synthesis, seeds, vocoder choice and MelSpec checks (tiny real checkpoint)."""

from __future__ import annotations

import math

import pytest
import torch

from tortoise_lite.api import RecordingSampler, TextToSpeech, build_sampler, load_checkpoint
from tortoise_lite.audio.mel import MelSpec, MelSpecMismatchError
from tortoise_lite.checkpoint import CheckpointError
from tortoise_lite.diffusion.samplers import Sampler
from tortoise_lite.text.tokenizers import UnknownSymbolError
from tortoise_lite.vocoders import GriffinLim, save_checkpoint
from tortoise_lite.vocoders.vocos import VocosVocoder

TEXTS = ["C4 E4 G4", "A3 R C5 D5", "D4"]


@pytest.fixture(scope="module")
def tts(tones_ckpt):
    model, info = load_checkpoint(tones_ckpt)
    return TextToSpeech(model, vocoder=GriffinLim(model.mel_spec, n_iter=4, nnls_iters=4), info=info)


def test_from_checkpoint_defaults_to_griffin_lim(tones_ckpt):
    tts = TextToSpeech.from_checkpoint(tones_ckpt)
    assert isinstance(tts.vocoder, GriffinLim) and tts.info.global_step == 2 and tts.info.used_ema
    assert tts.mel_spec == tts.vocoder.mel_spec and not tts.model.training


def test_synthesize_returns_wavs_and_mels_that_fit(tts):
    out = tts.synthesize(TEXTS, steps=3, seed=0)
    mel_spec = tts.mel_spec
    assert out.sample_rate == mel_spec.sample_rate and out.texts == TEXTS
    assert len(out.wavs) == len(out.mels) == 3
    for wav, mel in zip(out.wavs, out.mels):
        assert mel.shape[0] == mel_spec.n_mels and mel.shape[1] >= 1
        assert wav.ndim == 1 and wav.dtype == torch.float32
        assert wav.numel() == mel_spec.num_samples(mel.shape[1])  # the vocoder inverts every frame
        assert torch.isfinite(wav).all() and torch.isfinite(mel).all()
    # fewer notes -> fewer frames is not guaranteed for an untrained predictor, but lengths are per item
    assert out.nfe == 3 and out.sampler == "dpmpp_2m"
    assert out.acoustic_seconds > 0 and out.vocoder_seconds > 0
    assert math.isclose(out.rtf, out.acoustic_rtf + out.vocoder_rtf, rel_tol=1e-9)
    assert math.isclose(out.audio_seconds, sum(w.numel() for w in out.wavs) / out.sample_rate)


def test_seeded_output_does_not_depend_on_batch_size(tts):
    batch = tts.synthesize(TEXTS, steps=4, seed=7, batch_size=3)
    singles = [tts.synthesize([t], steps=4, seed=7) for t in TEXTS]
    pairs = tts.synthesize(TEXTS, steps=4, seed=7, batch_size=2)
    reordered = tts.synthesize(TEXTS[::-1], steps=4, seed=7, batch_size=3)
    for k in range(3):
        assert torch.allclose(batch.mels[k], singles[k].mels[0], atol=1e-4)
        assert torch.allclose(batch.mels[k], pairs.mels[k], atol=1e-4)
        assert torch.allclose(batch.mels[k], reordered.mels[2 - k], atol=1e-4)
        assert torch.allclose(batch.wavs[k], singles[k].wavs[0], atol=1e-3)  # vocoded per item too
    assert not torch.allclose(tts.synthesize(TEXTS[:1], steps=4, seed=8).mels[0], batch.mels[0], atol=1e-2)
    per_item = tts.synthesize([TEXTS[0]] * 2, steps=4, seed=[7, 8])
    assert torch.allclose(per_item.mels[0], batch.mels[0], atol=1e-4)
    assert not torch.allclose(per_item.mels[1], per_item.mels[0], atol=1e-2)
    with pytest.raises(ValueError, match="2 seeds for 3 texts"):
        tts.synthesize(TEXTS, seed=[1, 2])


def test_sampler_by_name_object_and_steps_set_the_nfe(tts):
    assert tts.synthesize(TEXTS[:1], sampler="euler", steps=5, seed=0).nfe == 5
    heun = tts.synthesize(TEXTS[:1], sampler="heun", steps=4, seed=0)
    assert heun.sampler == "heun" and heun.nfe <= 2 * 4 - 1 and heun.nfe > 4
    obj = tts.synthesize(TEXTS[:1], sampler=Sampler(name="ddim", steps=6, grid="trailing"), seed=0)
    assert obj.nfe == 6 and obj.steps == 6
    assert build_sampler("heun").grid == "karras"  # settings from conf/sampler/heun.yaml
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        build_sampler("nope")


def test_durations_override_sets_the_length(tts):
    n_tokens = len(tts.tokenizer.encode(TEXTS[0]))
    out = tts.synthesize(TEXTS[:1], steps=2, seed=0, durations=[[5] * n_tokens])
    assert out.mels[0].shape[1] == 5 * n_tokens


def test_recording_sampler_sees_every_x0_prediction(tts):
    rec = RecordingSampler(build_sampler("dpmpp_2m"), record_x0=True)
    mels, wrapper = tts.generate_mels(TEXTS[:2], sampler=rec.sampler, steps=4, seed=0, record_x0=True)
    assert wrapper.nfe == 4 and len(wrapper.x0_preds) == 4 and wrapper.ts.shape == (5,)
    # the last step lands on t = 0, where the sample is the last x0 prediction (alpha = 1, sigma = 0)
    assert torch.allclose(wrapper.x0_preds[-1], wrapper.final, atol=1e-5)
    final_mel = tts.model.stats.denormalize(wrapper.final)
    assert torch.allclose(final_mel[0, :, : mels[0].shape[1]], mels[0], atol=1e-4)


def test_bad_texts_are_refused_before_compute(tts):
    with pytest.raises(ValueError, match="text 1 is empty"):
        tts.synthesize(["C4", "   "])
    with pytest.raises(ValueError, match="no text"):
        tts.synthesize([])
    with pytest.raises(UnknownSymbolError, match="'H9'"):
        tts.synthesize(["C4 H9"])


def test_vocoder_choices_and_melspec_check(tts, tones_ckpt, tmp_path):
    model, info = load_checkpoint(tones_ckpt)
    gl = GriffinLim(model.mel_spec, n_iter=4)
    fast = TextToSpeech(model, vocoder=gl, info=info)
    assert fast.vocoder is gl
    assert fast.synthesize(["C4"], steps=2, seed=0).wavs[0].numel() > 0

    # a trained-vocoder checkpoint path: same MelSpec loads, another MelSpec is refused naming both
    voc = VocosVocoder(model.mel_spec, dim=16, intermediate_dim=32, num_layers=1)
    path = save_checkpoint(tmp_path / "vocoder.pt", voc)
    loaded = TextToSpeech(model, vocoder=path, info=info)
    assert isinstance(loaded.vocoder, VocosVocoder)
    assert loaded.synthesize(["C4"], steps=2, seed=0).wavs[0].numel() > 0

    other = MelSpec.preset("bigvgan_24k_100")
    bad = save_checkpoint(
        tmp_path / "vocoder24k.pt", VocosVocoder(other, dim=16, intermediate_dim=32, num_layers=1)
    )
    with pytest.raises(MelSpecMismatchError) as err:
        TextToSpeech(model, vocoder=bad, info=info)
    msg = str(err.value)
    assert "sample_rate" in msg and "22050" in msg and "24000" in msg and str(bad) in msg and "model" in msg
    with pytest.raises(MelSpecMismatchError, match="n_mels"):
        TextToSpeech(model, vocoder=GriffinLim(other))
    with pytest.raises(FileNotFoundError, match="griffin_lim"):
        TextToSpeech(model, vocoder="no_such_vocoder")


def test_missing_or_foreign_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        TextToSpeech.from_checkpoint(tmp_path / "nope.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        TextToSpeech.from_checkpoint(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.ckpt"):
        TextToSpeech.from_checkpoint(foreign)


def test_save_writes_wavs_and_real_pngs(tts, tmp_path):
    import matplotlib.image

    from tortoise_lite.audio.io import load_audio

    out = tts.synthesize(TEXTS[:2], steps=2, seed=0)
    paths = out.save(tmp_path / "o", mel_png=True)
    assert [p.name for p in paths] == ["utt_000.wav", "utt_000.png", "utt_001.wav", "utt_001.png"]
    wav = load_audio(paths[0], tts.sample_rate)
    assert wav.numel() == out.wavs[0].numel()
    img = matplotlib.image.imread(paths[1])
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and float(img[..., :3].std()) > 0.05


def test_speakers_are_stored_and_selectable_by_name(tts):
    """The tones corpus stores its timbre as the speaker: the checkpoint keeps the names in id order."""
    names = tts.speakers
    assert len(names) >= 2 and len(set(names)) == len(names)
    assert tts.speaker_id(names[1]) == 1 and tts.speaker_id(0) == 0
    with pytest.raises(ValueError, match="unknown speaker 'nobody'; known speakers: " + names[0]):
        tts.speaker_id("nobody")
    # the recipe's n_speakers=auto gave the model one embedding row per timbre (+ the null row)
    assert tts.model.n_speakers == len(names)
    assert tts.model.denoiser.cond.speaker_emb.num_embeddings == len(names) + 1
    one = tts.synthesize(TEXTS[:1], steps=3, seed=0, speaker=names[0]).mels[0]
    other = tts.synthesize(TEXTS[:1], steps=3, seed=0, speaker=names[1]).mels[0]
    assert one.shape == other.shape and not torch.equal(one, other)  # 2 training steps: a small difference
