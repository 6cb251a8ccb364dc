import math

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tortoise_lite.audio import MelSpec, MelSpecMismatchError
from tortoise_lite.audio.mel import PRESETS
from tortoise_lite.audio.torchaudio_reference import torchaudio_log_mel


def _speechlike(seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    """Harmonic tone with vibrato plus a little noise: energy in every band, values well above the floor."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * torch.sin(2 * math.pi * 3 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    wav = sum(0.3 / k * torch.sin(k * phase) for k in range(1, 30))
    return (wav + 0.01 * torch.randn(len(t), generator=g)).float()


def hifigan_reference(y: torch.Tensor, spec: MelSpec) -> torch.Tensor:
    """The HiFi-GAN/BigVGAN ``mel_spectrogram`` definition written out independently."""
    mel_basis = torch.from_numpy(
        librosa.filters.mel(
            sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax
        )
    ).float()
    pad = int((spec.n_fft - spec.hop) / 2)
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    s = torch.stft(
        y,
        spec.n_fft,
        hop_length=spec.hop,
        win_length=spec.win,
        window=torch.hann_window(spec.win),
        center=False,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    s = torch.sqrt(s.real.pow(2) + s.imag.pow(2) + 1e-9)
    return torch.log(torch.clamp(torch.matmul(mel_basis, s), min=1e-5))


@pytest.mark.parametrize("preset", ["hifigan_22k_80", "bigvgan_24k_100"])
def test_matches_hifigan_definition(preset):
    spec = MelSpec.preset(preset)
    wav = torch.stack([_speechlike(1.0, spec.sample_rate, 0), _speechlike(1.0, spec.sample_rate, 1) * 0.5])
    ours = spec(wav)
    ref = hifigan_reference(wav, spec)
    assert ours.shape == ref.shape == (2, spec.n_mels, spec.num_frames(wav.shape[1]))
    away = ref > math.log(spec.log_floor) + 1.0  # away from the clamp floor, where the 1e-9 in sqrt matters
    assert away.float().mean() > 0.5
    assert (ours - ref)[away].abs().max() <= 1e-4


def test_matches_librosa_numpy_path():
    """An independent FFT implementation (librosa/numpy) on the same padded signal."""
    spec = MelSpec()
    wav = _speechlike(0.5, spec.sample_rate)
    padded = np.pad(wav.numpy(), spec.pad, mode="reflect")
    ref = librosa.feature.melspectrogram(
        y=padded,
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        hop_length=spec.hop,
        win_length=spec.win,
        center=False,
        power=1.0,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=False,
        norm="slaney",
    )
    ref = np.log(np.maximum(ref, spec.log_floor))
    ours = spec(wav).numpy()
    assert ours.shape == ref.shape
    away = ref > math.log(spec.log_floor) + 1.0
    assert np.abs(ours - ref)[away].max() <= 1e-4


def test_vocos_preset_matches_torchaudio():
    spec = MelSpec.preset("vocos_24k_100")
    assert spec.center and spec.scale == "htk" and spec.norm is None and spec.log_floor == 1e-7
    wav = _speechlike(1.0, spec.sample_rate).unsqueeze(0)
    ours = spec(wav)
    ref = torchaudio_log_mel(spec, wav)
    assert ours.shape == ref.shape
    away = ref > math.log(spec.log_floor) + 1.0
    assert (ours - ref)[away].abs().max() <= 1e-4


def test_batched_equals_single_and_shapes():
    spec = MelSpec()
    a, b = _speechlike(0.7, spec.sample_rate, 0), _speechlike(0.7, spec.sample_rate, 3)
    batched = spec(torch.stack([a, b]))
    assert torch.allclose(batched[0], spec(a), atol=1e-5)
    assert torch.allclose(batched[1], spec(b), atol=1e-5)
    assert spec(a.numpy()).shape == spec(a).shape
    for n in (4096, 10000, 22050):
        assert spec(torch.zeros(n) + 0.1).shape[-1] == spec.num_frames(n)
    voc = MelSpec.preset("vocos_24k_100")
    assert voc(torch.zeros(24000)).shape[-1] == voc.num_frames(24000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_equals_cpu():
    spec = MelSpec()
    wav = _speechlike(1.0, spec.sample_rate).unsqueeze(0)
    assert torch.allclose(spec(wav.cuda()).cpu(), spec(wav), atol=1e-3)


def test_serialization_and_presets():
    for name in PRESETS:
        spec = MelSpec.preset(name)
        assert MelSpec.from_dict(spec.to_dict()) == spec
        assert spec.key == MelSpec.from_dict(spec.to_dict()).key
    assert MelSpec.preset("hifigan_22k_80") == MelSpec()
    assert MelSpec().key != MelSpec.preset("bigvgan_24k_100").key
    assert MelSpec.preset("hifigan_22k_80", n_mels=64).n_mels == 64
    with pytest.raises(ValueError, match="unknown MelSpec preset 'nope'"):
        MelSpec.preset("nope")
    with pytest.raises(ValueError, match="unknown fields \\['hop_size'\\]"):
        MelSpec.from_dict({**MelSpec().to_dict(), "hop_size": 256})
    with pytest.raises(ValueError, match="fmax=20000.0 exceeds the Nyquist"):
        MelSpec(fmax=20000.0)


def test_mismatch_names_every_field():
    a, b = MelSpec(), MelSpec.preset("bigvgan_24k_100")
    a.check_compatible(MelSpec())
    with pytest.raises(MelSpecMismatchError) as err:
        a.check_compatible(b, "acoustic model", "vocoder")
    msg = str(err.value)
    for field in ("sample_rate", "n_mels", "fmax"):
        assert field in msg
    assert "acoustic model=22050" in msg and "vocoder=24000" in msg
    assert "hop" not in a.diff(b)


def test_bad_audio_shapes():
    spec = MelSpec()
    with pytest.raises(ValueError, match=r"\(samples,\) or \(batch, samples\)"):
        spec(torch.zeros(1, 1, 1000))
    with pytest.raises(TypeError, match="float audio"):
        spec(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(ValueError, match="too short"):
        spec(torch.zeros(100))


@pytest.mark.parametrize("preset", ["hifigan_22k_80", "vocos_24k_100"])
def test_stft_equals_torch_stft(preset):
    spec = MelSpec.preset(preset, win=800)
    wav = _speechlike(0.3, spec.sample_rate).unsqueeze(0)
    x = F.pad(wav.unsqueeze(1), (spec.pad, spec.pad), mode="reflect").squeeze(1) if not spec.center else wav
    ref = torch.stft(
        x,
        spec.n_fft,
        spec.hop,
        spec.win,
        torch.hann_window(spec.win),
        center=spec.center,
        pad_mode="reflect",
        return_complex=True,
    )
    assert torch.allclose(spec.stft(wav), ref, atol=1e-3)
