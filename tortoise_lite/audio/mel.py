"""The one mel definition shared by acoustic models, vocoders, data caches and benchmarks.

Default convention = the HiFi-GAN / BigVGAN ``mel_spectrogram`` function: Slaney mel scale with Slaney
filter normalization, STFT magnitude (power 1), natural log clamped at ``log_floor``, ``center=False``
with ``(n_fft - hop) / 2`` reflect padding on each side. ``vocos_24k_100`` follows Vocos instead (HTK
scale, no filter norm, ``center=True``).

A ``MelSpec`` is a frozen dataclass: hashable, comparable, serializable with ``to_dict`` /
``from_dict``, and stored in every checkpoint so a model and a vocoder can prove they agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
import torch
import torch.nn.functional as F


class MelSpecMismatchError(ValueError):
    """Two components (model, vocoder, cache, checkpoint) were built for different mel settings."""


PRESETS: dict[str, dict[str, Any]] = {
    "hifigan_22k_80": dict(
        sample_rate=22050, n_fft=1024, hop=256, win=1024, n_mels=80, fmin=0.0, fmax=8000.0
    ),
    "bigvgan_24k_100": dict(
        sample_rate=24000, n_fft=1024, hop=256, win=1024, n_mels=100, fmin=0.0, fmax=12000.0
    ),
    "vocos_24k_100": dict(
        sample_rate=24000,
        n_fft=1024,
        hop=256,
        win=1024,
        n_mels=100,
        fmin=0.0,
        fmax=None,
        scale="htk",
        norm=None,
        center=True,
        log_floor=1e-7,
    ),
}
DEFAULT_PRESET = "hifigan_22k_80"


@lru_cache(maxsize=32)
def _filterbank_np(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool, norm: str | None
) -> np.ndarray:
    return librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm
    ).astype(np.float32)


@dataclass(frozen=True)
class MelSpec:
    """Log-mel spectrogram settings and the transform itself.

    ``mel(wav)``: wav ``(S,)`` or ``(B, S)`` float -> log-mel ``(n_mels, frames)`` or ``(B, n_mels, frames)``.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    win: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    scale: str = "slaney"
    norm: str | None = "slaney"
    center: bool = False
    log_floor: float = 1e-5
    power: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate={self.sample_rate} must be > 0")
        if self.hop <= 0 or self.win <= 0 or self.n_fft <= 0:
            problems.append("n_fft, hop and win must be > 0")
        if self.win > self.n_fft:
            problems.append(f"win={self.win} must be <= n_fft={self.n_fft}")
        if self.n_mels <= 0:
            problems.append(f"n_mels={self.n_mels} must be > 0")
        if self.scale not in ("slaney", "htk"):
            problems.append(f"scale={self.scale!r} must be 'slaney' or 'htk'")
        if self.norm not in (None, "slaney"):
            problems.append(f"norm={self.norm!r} must be 'slaney' or null")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            problems.append(f"fmax={self.fmax} exceeds the Nyquist frequency {self.sample_rate / 2}")
        if self.log_floor <= 0:
            problems.append(f"log_floor={self.log_floor} must be > 0")
        if problems:
            raise ValueError("invalid MelSpec: " + "; ".join(problems))

    # ----- construction / serialization -------------------------------------------------------------
    @classmethod
    def preset(cls, name: str = DEFAULT_PRESET, **overrides: Any) -> MelSpec:
        """A named preset (``hifigan_22k_80``, ``bigvgan_24k_100``, ``vocos_24k_100``) with optional overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown MelSpec preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"MelSpec settings have unknown fields {unknown}; known fields: {sorted(known)}")
        return cls(**dict(d))

    @property
    def key(self) -> str:
        """Short stable hash of the settings (used to key mel caches)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: MelSpec) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{field: (self_value, other_value)}``."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }

    def check_compatible(self, other: MelSpec, what_self: str = "model", what_other: str = "vocoder") -> None:
        """Raise ``MelSpecMismatchError`` naming every differing field unless ``other`` equals ``self``."""
        if not isinstance(other, MelSpec):
            raise TypeError(f"expected a MelSpec for the {what_other}, got {type(other).__name__}")
        d = self.diff(other)
        if d:
            details = ", ".join(f"{k}: {what_self}={a!r} vs {what_other}={b!r}" for k, (a, b) in d.items())
            raise MelSpecMismatchError(
                f"mel settings differ between the {what_self} and the {what_other} ({details}). "
                "Both sides must use the same MelSpec: pick a model/vocoder/cache made with the same settings, "
                "or rebuild one of them with the other's."
            )

    # ----- derived quantities -----------------------------------------------------------------------
    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop

    @property
    def pad(self) -> int:
        """Reflect padding on each side when ``center=False`` (HiFi-GAN convention)."""
        return (self.n_fft - self.hop) // 2

    def num_frames(self, n_samples: int) -> int:
        """Frames ``__call__`` returns for ``n_samples`` samples."""
        if self.center:
            return n_samples // self.hop + 1
        return (n_samples + 2 * self.pad - self.n_fft) // self.hop + 1

    def num_samples(self, n_frames: int) -> int:
        """Samples a vocoder produces for ``n_frames`` frames (``frames * hop``)."""
        return n_frames * self.hop

    def filterbank(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Mel filterbank ``(n_mels, n_fft // 2 + 1)``."""
        fb = _filterbank_np(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, self.scale == "htk", self.norm
        )
        return torch.from_numpy(fb).to(device=device, dtype=dtype)

    @property
    def _used_bins(self) -> int:
        """FFT bins up to the last one any mel filter touches."""
        fb = _filterbank_np(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, self.scale == "htk", self.norm
        )
        nonzero = np.flatnonzero(fb.any(axis=0))
        return int(nonzero[-1]) + 1 if nonzero.size else self.n_freqs

    def window(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        return torch.hann_window(self.win, device=device, dtype=dtype)

    # ----- the transform ----------------------------------------------------------------------------
    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """Complex STFT with this MelSpec's framing (equals ``torch.stft``): wav ``(B, S)`` -> ``(B, n_freqs, frames)``."""
        return torch.fft.rfft(self.frames(wav)).transpose(1, 2)

    def frames(self, wav: torch.Tensor) -> torch.Tensor:
        """Windowed frames with this MelSpec's padding: wav ``(B, S)`` -> ``(B, frames, n_fft)``."""
        pad = self.n_fft // 2 if self.center else self.pad
        if wav.shape[-1] <= pad:
            raise ValueError(
                f"audio of {wav.shape[-1]} samples is too short for reflect padding of {pad}; "
                f"need at least {pad + 1} samples ({(pad + 1) / self.sample_rate:.3f} s)"
            )
        wav = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        window = self.window(wav.device, wav.dtype)
        if self.win < self.n_fft:  # torch.stft's convention: the window sits centred in the FFT frame
            left = (self.n_fft - self.win) // 2
            window = F.pad(window, (left, self.n_fft - self.win - left))
        return wav.unfold(-1, self.n_fft, self.hop) * window

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear mel magnitude (before the log): wav ``(B, S)`` or ``(S,)`` -> ``(B, n_mels, frames)``."""
        wav, squeeze = self._as_batch(wav)
        fb = self.filterbank(wav.device, wav.dtype)
        used = self._used_bins  # bins above fmax carry no filter weight: skip their magnitude and matmul
        spec = torch.fft.rfft(self.frames(wav))[..., :used]
        # re^2 + im^2 then sqrt is ~2x faster on CPU than complex abs() or hypot().
        spec = torch.addcmul(spec.real * spec.real, spec.imag, spec.imag)
        spec = spec.sqrt_() if self.power == 1.0 else spec.pow_(self.power / 2)
        mel = torch.matmul(spec, fb[:, :used].T).transpose(1, 2)
        return mel.squeeze(0) if squeeze else mel

    def log(self, magnitude: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(magnitude, min=self.log_floor))

    def __call__(self, wav: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural-log mel: wav ``(S,)`` or ``(B, S)`` -> ``(n_mels, frames)`` or ``(B, n_mels, frames)``."""
        return self.magnitude(wav).clamp_(min=self.log_floor).log_()

    @staticmethod
    def _as_batch(wav: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(np.ascontiguousarray(wav))
        if not torch.is_floating_point(wav):
            raise TypeError(f"MelSpec expects float audio in [-1, 1], got dtype {wav.dtype}")
        if wav.ndim == 1:
            return wav.unsqueeze(0), True
        if wav.ndim == 2:
            return wav, False
        raise ValueError(
            f"MelSpec expects audio shaped (samples,) or (batch, samples), got {tuple(wav.shape)}"
        )


def mel_spec_from_config(name: str = DEFAULT_PRESET, **overrides: Any) -> MelSpec:
    """Hydra-friendly constructor: ``_target_: tortoise_lite.audio.mel.mel_spec_from_config``."""
    return MelSpec.preset(name, **overrides)
