"""The vocoder interface: ``(B, n_mels, frames)`` natural-log mels -> ``(B, samples)`` waveforms.

Every vocoder carries the ``MelSpec`` it expects. Feeding it mels made with other settings is the most
common silent failure of TTS stacks (garbage audio, no error), so ``check_input`` refuses it and names
both settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from tortoise_lite.audio.mel import MelSpec


class VocoderInputError(ValueError):
    """The mel given to a vocoder has the wrong shape, size, values or settings."""


def as_mel_spec(mel_spec: MelSpec | Mapping[str, Any] | str | None) -> MelSpec:
    """Accept a ``MelSpec``, its ``to_dict()`` form (e.g. from Hydra), a preset name, or None (the default)."""
    if mel_spec is None:
        return MelSpec()
    if isinstance(mel_spec, MelSpec):
        return mel_spec
    if isinstance(mel_spec, str):
        return MelSpec.preset(mel_spec)
    if isinstance(mel_spec, Mapping):
        d = dict(mel_spec)
        preset = d.pop("preset", None)
        return MelSpec.preset(preset, **d) if preset else MelSpec.from_dict(d)
    raise TypeError(
        f"expected a MelSpec, a dict of its fields or a preset name, got {type(mel_spec).__name__}"
    )


def check_upsampling(name: str, upsample_rates, mel_spec: MelSpec) -> None:
    """A generator that upsamples frames by ``prod(upsample_rates)`` must match the MelSpec hop."""
    total = math.prod(int(u) for u in upsample_rates)
    if total != mel_spec.hop:
        raise ValueError(f"{name} config: upsample_rates multiply to {total} but hop_size is {mel_spec.hop}")


class Vocoder(nn.Module):
    """Base class. Subclasses implement ``synthesize(mel) -> wav``; ``forward`` validates then calls it.

    Attributes:
        mel_spec: the ``MelSpec`` whose log-mels this vocoder inverts.
    """

    mel_spec: MelSpec

    def __init__(self, mel_spec: MelSpec | Mapping[str, Any] | str | None = None) -> None:
        super().__init__()
        self.mel_spec = as_mel_spec(mel_spec)

    @property
    def sample_rate(self) -> int:
        return self.mel_spec.sample_rate

    def check_input(
        self, mel: torch.Tensor, mel_spec: MelSpec | None = None, name: str = "mel"
    ) -> torch.Tensor:
        """Validate a log-mel batch and return it as ``(B, n_mels, frames)`` float.

        Args:
            mel: ``(n_mels, frames)`` or ``(B, n_mels, frames)`` natural-log mel.
            mel_spec: the settings the mel was made with, when known; must equal ``self.mel_spec``.
            name: what to call the input in error messages (e.g. a file name).
        """
        if mel_spec is not None:
            self.mel_spec.check_compatible(as_mel_spec(mel_spec), what_self="vocoder", what_other=name)
        if not isinstance(mel, torch.Tensor):
            raise VocoderInputError(f"{name}: expected a torch.Tensor, got {type(mel).__name__}")
        if mel.ndim == 2:
            mel = mel.unsqueeze(0)
        if mel.ndim != 3:
            raise VocoderInputError(
                f"{name}: expected a log-mel shaped (n_mels, frames) or (batch, n_mels, frames), "
                f"got shape {tuple(mel.shape)}"
            )
        n_mels = self.mel_spec.n_mels
        if mel.shape[1] != n_mels:
            hint = " (it looks transposed: frames first)" if mel.shape[2] == n_mels else ""
            raise VocoderInputError(
                f"{name}: has {mel.shape[1]} mel bins but the vocoder expects n_mels={n_mels}{hint}; "
                f"shape {tuple(mel.shape)}"
            )
        if mel.shape[2] < 1:
            raise VocoderInputError(f"{name}: has no frames (shape {tuple(mel.shape)})")
        if not torch.is_floating_point(mel):
            raise VocoderInputError(f"{name}: expected a float log-mel, got dtype {mel.dtype}")
        if not torch.isfinite(mel).all():
            bad = int((~torch.isfinite(mel)).sum())
            raise VocoderInputError(f"{name}: contains {bad} NaN/inf values; the mel generator diverged")
        return mel

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, frames)`` log-mel -> ``(B, samples)`` waveform (input already validated)."""
        raise NotImplementedError

    def forward(self, mel: torch.Tensor, mel_spec: MelSpec | None = None) -> torch.Tensor:
        """``(B, n_mels, frames)`` (or ``(n_mels, frames)``) log-mel -> ``(B, samples)`` waveform."""
        mel = self.check_input(mel, mel_spec)
        return self.synthesize(mel)

    def extra_repr(self) -> str:
        return f"mel_spec={self.mel_spec}"
