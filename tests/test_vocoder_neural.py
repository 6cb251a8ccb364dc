import pytest
import torch
from _train_utils import fit_recording
from torch.utils.data import DataLoader

from tortoise_lite.audio.mel import MelSpec, MelSpecMismatchError
from tortoise_lite.training.vocoder_module import (
    MelWavPairs,
    MultiResolutionSTFTLoss,
    VocoderGANModule,
    WavSegments,
    build_and_fit,
    corpus_wavs,
    heldout_speech,
)
from tortoise_lite.vocoders import VocosVocoder, load_vocoder, save_checkpoint
from tortoise_lite.vocoders.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator

TINY = dict(dim=32, intermediate_dim=64, num_layers=2)


@pytest.mark.parametrize("preset,frames_to_samples", [("hifigan_22k_80", 0), ("vocos_24k_100", -1)])
def test_vocos_shapes(preset, frames_to_samples):
    ms = MelSpec.preset(preset)
    v = VocosVocoder(ms, **TINY)
    out = v(torch.randn(3, ms.n_mels, 20))
    assert out.shape == (3, (20 + frames_to_samples) * ms.hop)
    assert torch.isfinite(out).all()


def test_mel_prior_starts_at_the_least_squares_magnitude_and_survives_a_checkpoint(tmp_path):
    ms = MelSpec()
    v = VocosVocoder(ms, **TINY, mel_prior=True).eval()
    t = torch.arange(ms.hop * 24) / ms.sample_rate
    mel = ms(0.5 * torch.sin(2 * torch.pi * 300 * t))[None]
    with torch.no_grad():
        spec = v.head.spectrogram(v.backbone(mel), v.prior_log_magnitude(mel))
    expected = (torch.linalg.pinv(ms.filterbank()) @ mel.exp()).clamp_min(ms.log_floor)
    torch.testing.assert_close(spec.abs(), expected, rtol=1e-4, atol=1e-6)
    # Its re-analysed mel is already close to the input (only the untrained phase is off).
    with torch.no_grad():
        out = v(mel)
    assert (ms(out)[..., 2:-2] - mel[..., 2:-2]).abs().mean() < 1.5
    loaded = load_vocoder(save_checkpoint(tmp_path / "v.pt", v), mel_spec=ms)
    assert loaded.arch["mel_prior"] is True
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), out)
    with pytest.raises(ValueError, match="head_n_fft"):
        VocosVocoder(ms, **TINY, mel_prior=True, head_n_fft=512)


def test_checkpoint_roundtrip_and_mel_check(tmp_path):
    ms = MelSpec()
    v = VocosVocoder(ms, **TINY).eval()
    path = save_checkpoint(tmp_path / "vocoder.pt", v, {"note": "test"})
    raw = torch.load(path, weights_only=True)
    assert raw["mel_spec"] == ms.to_dict() and raw["package_version"] and raw["config"] == {"note": "test"}
    loaded = load_vocoder(path, mel_spec=ms)
    mel = torch.randn(1, 80, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), v(mel))
    with pytest.raises(MelSpecMismatchError, match="n_mels"):
        load_vocoder(path, mel_spec=MelSpec(n_mels=100))


def _tiny_module(ms, pretrain_steps, gan_every=1, mrstft_coeff=0.0):
    return VocoderGANModule(
        VocosVocoder(ms, **TINY),
        MultiPeriodDiscriminator((2, 3), (4, 8)),
        MultiResolutionDiscriminator((256,), channels=4),
        lr=2e-3,
        pretrain_steps=pretrain_steps,
        gan_every=gan_every,
        mrstft_coeff=mrstft_coeff,
        mrstft_resolutions=((256, 64), (512, 128)),
    )


def test_gan_training_steps_reduce_mel_loss_and_update_both_networks():
    torch.manual_seed(0)
    ms = MelSpec()
    t = torch.arange(ms.sample_rate // 2) / ms.sample_rate
    wav = 0.4 * torch.sin(2 * torch.pi * 180 * t) + 0.2 * torch.sin(2 * torch.pi * 540 * t)
    data = DataLoader(WavSegments([wav], ms, segment_frames=8, items_per_epoch=64), batch_size=4)
    module = _tiny_module(ms, pretrain_steps=10, gan_every=3, mrstft_coeff=10.0)
    d_before = [p.detach().clone() for p in module.mpd.parameters()]
    trainer, history = fit_recording(module, data, max_steps=24)
    mel_losses = [h["train/mel_loss"] for h in history]
    assert sum(mel_losses[-3:]) / 3 < 0.8 * sum(mel_losses[:3]) / 3, mel_losses
    assert "train/d_loss" in history[-1] and "train/fm_loss" in history[-1]
    assert "train/d_loss" not in history[0]  # reconstruction-only warm-up first
    assert "train/mrstft_loss" in history[0]
    # Lightning counts optimizer steps: 1 per reconstruction batch, 2 per GAN batch (10, 13, 16, ...).
    gan_batches = [b for b in range(len(history)) if b >= 10 and (b - 10) % 3 == 0]
    assert trainer.global_step == len(history) + len(gan_batches)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, module.mpd.parameters()))
    assert module.batches_seen == len(history)


def test_mel_wav_pairs_are_aligned():
    ms = MelSpec()
    wav = torch.randn(ms.hop * 40)
    mel = ms(wav)
    ds = MelWavPairs([(mel, wav)], ms, segment_frames=8, items_per_epoch=5)
    m, w = ds[0]
    assert m.shape == (80, 8) and w.shape == (8 * ms.hop,)
    # The mel slice is the analysis of the wav slice away from the edges (reflect padding differs there).
    torch.testing.assert_close(ms(w)[:, 2:-2], m[:, 2:-2], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="ground-truth aligned"):
        MelWavPairs([(mel[:, :10], wav)], ms, 8, 5)


def test_mrstft_loss_is_zero_for_identical_audio_and_grows_with_error():
    torch.manual_seed(0)
    loss = MultiResolutionSTFTLoss(((256, 64), (512, 128)))
    real = torch.randn(2, 4096) * 0.3
    assert loss(real, real).item() < 1e-5
    small, large = (
        loss(real + 0.01 * torch.randn_like(real), real),
        loss(real + 0.3 * torch.randn_like(real), real),
    )
    assert 0 < small.item() < large.item()
    # Shifting the phase of a sinusoid by half a window changes nothing in the magnitudes at one resolution
    # only; a time-reversed signal has the same long-term spectrum but differs frame by frame.
    assert loss(real.flip(-1), real).item() > large.item() / 2


def _fit_cfg(tmp_path, **trainer):
    return {
        "vocoder_recipe": {
            "seed": 0,
            "output_dir": str(tmp_path / "run"),
            "mel": "hifigan_22k_80",
            "generator": TINY,
            "data": {
                "corpus": {
                    "name": "synthetic_speech",
                    "n_utterances": 6,
                    "n_heldout": 2,
                    "cache_dir": str(tmp_path / "corpora"),
                },
                "segment_frames": 8,
                "batch_size": 2,
                "items_per_epoch": 8,
                "val_items": 2,
                "val_seconds": 0.5,
            },
            "gan": {
                "pretrain_steps": 2,
                "gan_every": 2,
                "mrstft_coeff": 1.0,
                "mpd_periods": [2, 3],
                "mpd_channels": [4, 8],
                "mrd_fft_sizes": [256],
                "mrd_channels": 4,
            },
            "trainer": {
                "accelerator": "cpu",
                "enable_progress_bar": False,
                "val_check_interval": 3,
                **trainer,
            },
        },
        "ckpt_path": None,
    }


def test_build_and_fit_on_corpus_then_resume_from_last(tmp_path):
    cfg = _fit_cfg(tmp_path, max_steps=6)
    path = build_and_fit(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert path.is_file() and ckpt.is_file()
    raw = torch.load(ckpt, weights_only=True)
    first = raw["batches_seen"]
    # Batches 0, 1 reconstruction (1 optimizer step each), 2 GAN (2 steps), 3 reconstruction, 4 GAN: the
    # 6th step falls inside batch 4, so training stops after it with 7 optimizer steps.
    assert (raw["global_step"], first) == (7, 5)
    assert isinstance(load_vocoder(ckpt), VocosVocoder) and isinstance(load_vocoder(path), VocosVocoder)
    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        build_and_fit(cfg)
    resumed = _fit_cfg(tmp_path, max_steps=10)
    resumed["ckpt_path"] = "last"
    build_and_fit(resumed)
    raw = torch.load(ckpt, weights_only=True)
    assert (raw["global_step"], raw["batches_seen"]) == (10, 7)  # batch 5 reconstruction, batch 6 GAN


def test_heldout_renderings_are_not_training_items(tmp_path):
    from tortoise_lite.data.corpora import synthetic_speech

    ms = MelSpec()
    corpus = synthetic_speech(ms, n_utterances=6, n_heldout=2, cache_dir=tmp_path, progress=False)
    wavs, same = corpus_wavs(ms, {"n_utterances": 6, "n_heldout": 2, "cache_dir": str(tmp_path)})
    assert same.root == corpus.root and len(wavs) == 6
    held = heldout_speech(corpus, ms, 2)
    assert len(held) == 2 and all(w.ndim == 1 and w.abs().max() > 0.05 for w in held)
    assert not set(corpus.heldout_prompts()) & {item.text for item in corpus.items()}


def _harmonic_tone_mel(ms: MelSpec, frames: int = 40) -> torch.Tensor:
    t = torch.arange(ms.hop * frames) / ms.sample_rate
    wav = sum(a * torch.sin(2 * torch.pi * k * 220.0 * t) for k, a in ((1, 0.4), (2, 0.2), (3, 0.1)))
    return ms(wav)[None]


def test_consistency_projections_refine_the_phase_and_train_through(tmp_path):
    ms = MelSpec()
    mel = _harmonic_tone_mel(ms)
    plain = VocosVocoder(ms, **TINY, mel_prior=True, prior_nnls_iters=30).eval()
    refined = VocosVocoder(ms, **TINY, mel_prior=True, prior_nnls_iters=30, consistency_iters=8).eval()
    refined.load_state_dict(plain.state_dict())

    def err(v):
        with torch.no_grad():
            return float((ms(v(mel))[..., 2:-2] - mel[..., 2:-2]).abs().mean())

    # Same network, same start: the projections make the random starting phase consistent (Griffin-Lim).
    assert err(refined) < 0.7 * err(plain)
    # The NNLS prior is GriffinLim's own magnitude estimate.
    from tortoise_lite.vocoders import mel_to_linear

    torch.testing.assert_close(
        plain.prior_log_magnitude(mel), mel_to_linear(mel, ms, 30).clamp_min(ms.log_floor).log()
    )
    # Differentiable: a mel loss through the 8 projections reaches the backbone with finite gradients.
    refined.train()
    loss = (ms(refined(mel)) - mel).abs().mean()
    loss.backward()
    grads = [p.grad for p in refined.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    loaded = load_vocoder(save_checkpoint(tmp_path / "v.pt", refined.eval()), mel_spec=ms)
    assert loaded.arch["consistency_iters"] == 8 and loaded.arch["prior_nnls_iters"] == 30
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), refined(mel))
    with pytest.raises(ValueError, match="consistency_iters"):
        VocosVocoder(ms, **TINY, consistency_iters=-1)
