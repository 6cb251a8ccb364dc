"""torchaudio's MelSpectrogram configured like a MelSpec: an independent reference for tests and benchmarks.

torchaudio is in maintenance mode upstream, so it is imported only here (inside ``audio/``) and only on demand.
"""

from __future__ import annotations

import torch

from tortoise_lite.audio.mel import MelSpec


def torchaudio_log_mel(spec: MelSpec, wav: torch.Tensor) -> torch.Tensor:
    """Log-mel of wav ``(B, S)`` -> ``(B, n_mels, frames)`` computed by ``torchaudio.transforms.MelSpectrogram``.

    Only ``center=True`` settings are expressible (torchaudio pads inside the STFT).
    """
    import torchaudio

    if not spec.center:
        raise ValueError(
            "torchaudio's MelSpectrogram reference needs center=True (e.g. the vocos_24k_100 preset)"
        )
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=spec.sample_rate,
        n_fft=spec.n_fft,
        win_length=spec.win,
        hop_length=spec.hop,
        f_min=spec.fmin,
        f_max=spec.fmax,
        n_mels=spec.n_mels,
        power=spec.power,
        center=True,
        pad_mode="reflect",
        norm=spec.norm,
        mel_scale=spec.scale,
    )
    return torch.log(torch.clamp(transform(wav), min=spec.log_floor))
