"""Phase-gradient heuristic integration (PGHI): the phase it derives, Griffin-Lim started from it, and the
Vocos-style vocoder whose magnitude is trained by regression and whose phase comes from PGHI."""

import math
import random

import pytest
import torch
from _train_utils import fit_recording
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.paths import config_dir
from tortoise_lite.training.vocoder_module import VocoderMagnitudeModule, WavSegments, build_and_fit
from tortoise_lite.vocoders import GriffinLim, VocosVocoder, load_vocoder, save_checkpoint
from tortoise_lite.vocoders.griffin_lim import fast_griffin_lim
from tortoise_lite.vocoders.pghi import pghi_phase

TINY = dict(dim=32, intermediate_dim=64, num_layers=2)


def vibrato_tone(ms: MelSpec, seconds: float = 1.0, f0: float = 196.0) -> torch.Tensor:
    """Five harmonics with a 5 Hz, +-3 % vibrato: partials that move across bins from frame to frame."""
    t = torch.arange(int(seconds * ms.sample_rate), dtype=torch.float64) / ms.sample_rate
    inst = f0 * (1 + 0.03 * torch.sin(2 * math.pi * 5 * t))
    cycles = torch.cumsum(inst, 0) / ms.sample_rate
    wav = sum(0.3 / k * torch.sin(2 * math.pi * k * cycles) for k in range(1, 6))
    return wav.float()


def _reanalysis_l1(ms: MelSpec, wav: torch.Tensor, mel: torch.Tensor) -> float:
    remel = ms(wav)
    return float((remel[..., 2:-2] - mel[..., 2:-2]).abs().mean())


def test_phase_advance_of_a_steady_sinusoid_matches_its_frequency():
    ms = MelSpec()
    f0 = 27.3 * ms.sample_rate / ms.n_fft  # between bins 27 and 28
    t = torch.arange(ms.sample_rate) / ms.sample_rate
    wav = 0.5 * torch.sin(2 * math.pi * f0 * t)
    spec = ms.stft(wav[None].double())
    phase = pghi_phase(spec.abs(), ms)[0]
    frames = slice(10, -10)
    # The analysis' own phase advances by 2 pi f0 hop / sr per frame at every bin near the peak; the
    # integrated phase must advance the same way although it never saw a phase.
    expected = 2 * math.pi * f0 * ms.hop / ms.sample_rate
    for k in (27, 28):
        step = torch.diff(phase[k, frames])
        err = torch.remainder(step - expected + math.pi, 2 * math.pi) - math.pi
        assert err.abs().max() < 0.05, (k, err.abs().max())
    # Across the main lobe (Hann: +-2 bins; the side lobes flip sign, which a Gaussian window model cannot
    # know) the true and integrated phases of one frame differ by one constant (the peak's phase).
    true = torch.angle(spec[0])
    delta = torch.remainder(phase[26:30, 50] - true[26:30, 50], 2 * math.pi)
    spread = torch.remainder(delta - delta[1] + math.pi, 2 * math.pi) - math.pi
    assert spread.abs().max() < 0.15, spread


def test_integrated_phase_of_the_true_magnitude_is_nearly_consistent():
    ms = MelSpec()
    wav = vibrato_tone(ms)
    mel = ms(wav)
    magnitude = ms.stft(wav[None])[..., : mel.shape[-1]].abs()
    from tortoise_lite.vocoders.spectral import ISTFT

    istft = ISTFT(ms.n_fft, ms.hop, ms.win, "same")
    length = ms.num_samples(mel.shape[-1])
    pghi = istft(torch.polar(magnitude, pghi_phase(magnitude, ms)), length=length)[0]
    random = istft(torch.polar(magnitude, torch.rand_like(magnitude) * 2 * math.pi), length=length)[0]
    err_pghi, err_random = _reanalysis_l1(ms, pghi, mel), _reanalysis_l1(ms, random, mel)
    # No iteration at all: the integrated phase re-analyses far closer to the mel (measured 0.17 vs 0.42).
    assert err_pghi < 0.5 * err_random, (err_pghi, err_random)


def test_griffin_lim_from_the_integrated_phase_needs_fewer_iterations():
    ms = MelSpec()
    mel = ms(vibrato_tone(ms))
    err = {
        (init, n): _reanalysis_l1(ms, GriffinLim(ms, n_iter=n, init=init)(mel)[0], mel)
        for init in ("random", "pghi")
        for n in (8, 32)
    }
    assert err["pghi", 8] < err["random", 8], err
    assert err["pghi", 8] < err["random", 32], err
    with pytest.raises(ValueError, match="init"):
        GriffinLim(ms, init="zeros")
    with pytest.raises(ValueError, match="init"):
        fast_griffin_lim(torch.ones(1, ms.n_freqs, 8), ms, init="bogus")


def test_batch_of_two_equals_two_singles_and_shape_errors():
    ms = MelSpec()
    a = ms.stft(vibrato_tone(ms, 0.4, 150.0)[None]).abs()
    b = ms.stft(0.1 * vibrato_tone(ms, 0.4, 330.0)[None]).abs()
    both = pghi_phase(torch.cat([a, b]), ms)
    torch.testing.assert_close(both[0], pghi_phase(a, ms)[0])
    torch.testing.assert_close(both[1], pghi_phase(b, ms)[0])
    with pytest.raises(ValueError, match="n_fft=1024"):
        pghi_phase(torch.ones(1, 80, 10), ms)


def test_vocos_with_integrated_phase_predicts_a_magnitude_and_survives_a_checkpoint(tmp_path):
    ms = MelSpec()
    mel = ms(vibrato_tone(ms, 0.5))[None]
    torch.manual_seed(0)
    v = VocosVocoder(ms, **TINY, mel_prior=True, phase="pghi", consistency_iters=2).eval()
    with torch.no_grad():
        # log_magnitude is the magnitude half of the head (the phase half is never computed)
        head = v.head.spectrogram(v.backbone(mel), v.prior_log_magnitude(mel)).abs()
        torch.testing.assert_close(v.log_magnitude(mel).exp(), head, rtol=1e-4, atol=1e-6)
        out = v(mel)
    assert out.shape == (1, ms.num_samples(mel.shape[-1])) and torch.isfinite(out).all()
    loaded = load_vocoder(save_checkpoint(tmp_path / "v.pt", v), mel_spec=ms)
    assert loaded.arch["phase"] == "pghi" and loaded.arch["consistency_iters"] == 2
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), out)
    with pytest.raises(ValueError, match="phase must be one of"):
        VocosVocoder(ms, **TINY, phase="predicted")
    with pytest.raises(ValueError, match="head_n_fft"):
        VocosVocoder(ms, **TINY, phase="pghi", head_n_fft=512)


@pytest.mark.parametrize("seed", [0, 1])
def test_magnitude_regression_training_reduces_its_losses(seed):
    torch.manual_seed(seed)
    random.seed(seed)  # WavSegments draws its segments from Python's generator
    ms = MelSpec()
    data = DataLoader(
        WavSegments([vibrato_tone(ms)], ms, segment_frames=8, items_per_epoch=160), batch_size=4
    )
    module = VocoderMagnitudeModule(VocosVocoder(ms, **TINY, mel_prior=True, phase="pghi"), lr=3e-3)
    trainer, history = fit_recording(module, data, max_steps=40)
    # Mean of the last 5 over the first 5 batches, measured on seeds 0-4: 0.42-0.54 (log-magnitude L1) and
    # 0.71-0.77 (spectral convergence).
    for key, bound in (("train/mag_loss", 0.7), ("train/sc_loss", 0.88)):
        values = [h[key] for h in history]
        assert sum(values[-5:]) < bound * sum(values[:5]), (key, values)
    assert module.batches_seen == 40 == trainer.global_step
    with pytest.raises(ValueError, match="phase='pghi'"):
        VocoderMagnitudeModule(VocosVocoder(ms, **TINY))


def test_vocoder_pghi_recipe_trains_the_magnitude_model(tmp_path):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "+recipe=vocoder_pghi",
                f"output_dir={tmp_path / 'run'}",
                "vocoder_recipe.generator.dim=32",
                "vocoder_recipe.generator.intermediate_dim=64",
                "vocoder_recipe.generator.num_layers=2",
                "vocoder_recipe.generator.consistency_iters=2",
                "+vocoder_recipe.data.corpus.n_heldout=2",
                f"+vocoder_recipe.data.corpus.cache_dir={tmp_path / 'corpora'}",
                "vocoder_recipe.data.corpus.n_utterances=6",
                "vocoder_recipe.data.segment_frames=8",
                "vocoder_recipe.data.batch_size=2",
                "vocoder_recipe.data.val_items=1",
                "vocoder_recipe.data.val_seconds=0.5",
                "vocoder_recipe.trainer.max_steps=6",
                "vocoder_recipe.trainer.val_check_interval=3",
                "vocoder_recipe.trainer.enable_progress_bar=false",
                "vocoder_recipe.trainer.logger=false",
            ],
        )
    path = build_and_fit(cfg)
    raw = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert raw["global_step"] == 6 == raw["batches_seen"]  # one optimizer step per batch, no discriminator
    v = load_vocoder(path)
    assert isinstance(v, VocosVocoder) and v.arch["phase"] == "pghi" and v.arch["consistency_iters"] == 2
