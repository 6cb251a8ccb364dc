import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tortoise_lite.audio.mel import MelSpec, MelSpecMismatchError
from tortoise_lite.training.vocoder_module import MelWavPairs, VocoderGANModule, WavSegments
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


def _tiny_module(ms, pretrain_mel_steps):
    return VocoderGANModule(
        VocosVocoder(ms, **TINY),
        MultiPeriodDiscriminator((2, 3), (4, 8)),
        MultiResolutionDiscriminator((256,), channels=4),
        lr=2e-3,
        pretrain_mel_steps=pretrain_mel_steps,
    )


class _Record(L.Callback):
    def __init__(self):
        self.history = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.history.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def test_gan_training_steps_reduce_mel_loss_and_update_both_networks():
    torch.manual_seed(0)
    ms = MelSpec()
    t = torch.arange(ms.sample_rate // 2) / ms.sample_rate
    wav = 0.4 * torch.sin(2 * torch.pi * 180 * t) + 0.2 * torch.sin(2 * torch.pi * 540 * t)
    data = DataLoader(WavSegments([wav], ms, segment_frames=8, items_per_epoch=64), batch_size=4)
    module = _tiny_module(ms, pretrain_mel_steps=10)
    d_before = [p.detach().clone() for p in module.mpd.parameters()]
    rec = _Record()
    trainer = L.Trainer(
        max_steps=24,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
        accelerator="cpu",
    )
    trainer.fit(module, data)
    mel_losses = [h["train/mel_loss"] for h in rec.history]
    assert sum(mel_losses[-3:]) / 3 < 0.8 * sum(mel_losses[:3]) / 3, mel_losses
    assert "train/d_loss" in rec.history[-1] and "train/fm_loss" in rec.history[-1]
    assert "train/d_loss" not in rec.history[0]  # mel-only warm-up first
    assert any(not torch.equal(a, b) for a, b in zip(d_before, module.mpd.parameters()))
    assert module.batches_seen == len(rec.history)


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
