"""Vocos-style neural vocoder: a ConvNeXt backbone at frame rate and an iSTFT head.

All layers run at the mel frame rate (no upsampling convolutions); the head predicts log-magnitude and
phase for every STFT bin and one inverse STFT makes the waveform. That is why it is cheap on CPU.
Parameter names follow gemelo-ai/vocos (``backbone.embed``, ``backbone.convnext.N.dwconv`` ...,
``head.out``) so upstream ``pytorch_model.bin`` files load into the same class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder
from tortoise_lite.vocoders.griffin_lim import consistency_projections, mel_to_linear
from tortoise_lite.vocoders.pghi import pghi_phase
from tortoise_lite.vocoders.spectral import ISTFT


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> Linear(dim, hidden) -> GELU -> Linear(hidden, dim) -> scale, residual.

    ``x``: ``(B, dim, T)`` -> ``(B, dim, T)``.
    """

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float, kernel_size: int = 7):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        # Layer scale (ConvNeXt): small residual branches at init keep a deep stack close to identity.
        self.gamma = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)  # (B, T, dim)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """``(B, input_channels, T)`` -> ``(B, T, dim)`` features, same frame rate."""

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        scale = layer_scale_init_value or 1.0 / num_layers
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, scale) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFTHead(nn.Module):
    """``(B, T, dim)`` -> waveform ``(B, S)`` via predicted log-magnitude and phase per STFT bin.

    Args:
        padding: ``"same"`` (``S = T * hop``; matches ``center=False`` mels) or ``"center"``
            (``S = (T - 1) * hop``; matches ``center=True`` mels).
    """

    def __init__(
        self, dim: int, n_fft: int, hop_length: int, padding: str = "same", win_length: int | None = None
    ):
        super().__init__()
        self.n_fft = n_fft
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, win_length or n_fft, padding)

    # Upstream Vocos clips the predicted magnitude at 1e2 (keeps early training finite); kept for its weights.
    max_magnitude = 1e2

    def log_magnitude(self, x: torch.Tensor, log_mag_offset: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, dim)`` -> log-magnitude ``(B, n_fft // 2 + 1, T)``, clipped at ``log(max_magnitude)``;
        ``log_mag_offset`` (same shape) is added first (a prior the network then only corrects). Only the
        magnitude half of the output projection is computed."""
        n_bins = self.n_fft // 2 + 1
        log_mag = F.linear(x, self.out.weight[:n_bins], self.out.bias[:n_bins]).transpose(1, 2)
        if log_mag_offset is not None:
            log_mag = log_mag + log_mag_offset
        return log_mag.clamp(max=math.log(self.max_magnitude))

    def spectrogram(self, x: torch.Tensor, log_mag_offset: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, dim)`` -> complex ``(B, n_fft // 2 + 1, T)`` (``log_mag_offset``: see ``log_magnitude``)."""
        n_bins = self.n_fft // 2 + 1
        mag = self.log_magnitude(x, log_mag_offset).exp()
        phase = F.linear(x, self.out.weight[n_bins:], self.out.bias[n_bins:]).transpose(1, 2)
        # cos/sin rather than a raw angle: the phase output is unbounded and only its angle matters.
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(self.spectrogram(x))


PHASES = ("learned", "pghi")


class VocosVocoder(Vocoder):
    """ConvNeXt + iSTFT vocoder for ``mel_spec``'s log-mels.

    Args:
        mel_spec: input mel settings (object, dict or preset name). The head's framing follows it
            (``n_fft``, ``hop``; ``center`` picks "center" vs "same" padding) unless given explicitly.
        dim, intermediate_dim, num_layers: backbone size (defaults: 256 / 768 / 6, ~2.9 M parameters,
            >50x real time on 2 CPU threads at 22 kHz).
        head_n_fft, head_padding: override the head framing (used when loading upstream Vocos configs).
        mel_prior: predict the log-magnitude as a correction of the least-squares inversion of the mel
            (``pinv(filterbank) @ exp(mel)``, floored) instead of from scratch. The magnitude (silences
            included) is then about right from the first step and training spends itself on the phase; it
            needs ``head_n_fft == mel_spec.n_fft``. Off for upstream Vocos weights.
        consistency_iters: fast Griffin-Lim projections applied to the head's spectrogram before the
            inverse STFT (0 = plain Vocos). Trained through (Deep Griffin-Lim, Masuyama et al. 2019): the
            network learns the magnitude and a starting phase that the projections make consistent. Each
            costs one STFT + iSTFT, about a fifth of the default network's time at 22 kHz. Needs
            ``head_n_fft == mel_spec.n_fft``.
        consistency_momentum: the fast Griffin-Lim momentum of those projections.
        prior_nnls_iters: with ``mel_prior``, refine the least-squares inverse by this many projected
            gradient steps of the non-negative least-squares solve (as ``GriffinLim`` does; 0 = the clamped
            pseudo-inverse).
        phase: ``"learned"`` (Vocos: the head predicts the phase) or ``"pghi"``: the network predicts only
            the magnitude (trained by regression on the true STFT magnitude, no GAN) and the phase comes
            from phase-gradient heuristic integration of that magnitude (``pghi.py``), refined by the
            ``consistency_iters`` Griffin-Lim projections (not trained through). Needs
            ``head_n_fft == mel_spec.n_fft``.
        pghi_tol: with ``phase="pghi"``, bins below this fraction of the loudest get a random phase.

    ``forward(mel)``: ``(B, n_mels, T)`` log-mel -> ``(B, S)`` with ``S = T * hop`` ("same") or
    ``(T - 1) * hop`` ("center").
    """

    def __init__(
        self,
        mel_spec: MelSpec | Mapping[str, Any] | str | None = None,
        dim: int = 256,
        intermediate_dim: int = 768,
        num_layers: int = 6,
        layer_scale_init_value: float | None = None,
        head_n_fft: int | None = None,
        head_padding: str | None = None,
        mel_prior: bool = False,
        consistency_iters: int = 0,
        consistency_momentum: float = 0.99,
        prior_nnls_iters: int = 0,
        phase: str = "learned",
        pghi_tol: float = 1e-5,
    ) -> None:
        super().__init__(mel_spec)
        ms = self.mel_spec
        self.arch = dict(
            dim=dim,
            intermediate_dim=intermediate_dim,
            num_layers=num_layers,
            layer_scale_init_value=layer_scale_init_value,
            head_n_fft=head_n_fft or ms.n_fft,
            head_padding=head_padding or ("center" if ms.center else "same"),
            mel_prior=bool(mel_prior),
            consistency_iters=int(consistency_iters),
            consistency_momentum=float(consistency_momentum),
            prior_nnls_iters=int(prior_nnls_iters),
            phase=str(phase),
            pghi_tol=float(pghi_tol),
        )
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        self.backbone = VocosBackbone(ms.n_mels, dim, intermediate_dim, num_layers, layer_scale_init_value)
        self.head = ISTFTHead(dim, self.arch["head_n_fft"], ms.hop, self.arch["head_padding"])
        if mel_prior:
            if self.arch["head_n_fft"] != ms.n_fft:
                raise ValueError(
                    f"mel_prior needs head_n_fft == mel_spec.n_fft ({ms.n_fft}), got {self.arch['head_n_fft']}"
                )
            # Rebuilt from the MelSpec, never saved: (n_freqs, n_mels) least-squares inverse of the filterbank.
            self.register_buffer("mel_pinv", torch.linalg.pinv(ms.filterbank()), persistent=False)
            # 1e2 would clip loud partials (a 0.5-amplitude sine reaches ~n_fft / 8); |X| <= sum(window)
            # = win / 2 for audio in [-1, 1], so that is the clip here.
            self.head.max_magnitude = ms.win / 2
            # Zero correction at init: the first output is the prior magnitude (with untrained phase).
            n_bins = ms.n_freqs
            nn.init.zeros_(self.head.out.weight[:n_bins])
            nn.init.zeros_(self.head.out.bias[:n_bins])

        if consistency_iters < 0:
            raise ValueError(f"consistency_iters must be >= 0, got {consistency_iters}")
        if (consistency_iters or phase == "pghi") and self.arch["head_n_fft"] != ms.n_fft:
            raise ValueError(
                f"consistency_iters and phase='pghi' need head_n_fft == mel_spec.n_fft ({ms.n_fft}), "
                f"got {self.arch['head_n_fft']}"
            )

    def prior_log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, T)`` -> floored log linear magnitude ``(B, n_freqs, T)`` (``mel_prior``)."""
        ms = self.mel_spec
        n_iter = self.arch.get("prior_nnls_iters", 0)
        if n_iter:
            return mel_to_linear(mel, ms, n_iter).clamp_min(ms.log_floor).log()
        linear = (self.mel_pinv @ mel.exp()).clamp_min(ms.log_floor)  # mel of |X|^power
        return linear.log() / ms.power

    def _prior(self, mel: torch.Tensor) -> torch.Tensor | None:
        return self.prior_log_magnitude(mel) if self.arch.get("mel_prior") else None

    def log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, T)`` -> the predicted log-magnitude ``(B, head_n_fft // 2 + 1, T)``."""
        return self.head.log_magnitude(self.backbone(mel), self._prior(mel))

    def spectrogram(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, T)`` -> the complex STFT ``(B, head_n_fft // 2 + 1, T)`` the head inverts."""
        n_iter = self.arch.get("consistency_iters", 0)
        if self.arch.get("phase", "learned") == "pghi":
            magnitude = self.log_magnitude(mel).exp()
            phase = pghi_phase(magnitude, self.mel_spec, self.arch.get("pghi_tol", 1e-5))
            angles = torch.polar(torch.ones_like(magnitude), phase)
        else:
            spec = self.head.spectrogram(self.backbone(mel), self._prior(mel))
            if not n_iter:
                return spec
            magnitude = spec.abs()
            angles = spec / (magnitude + torch.finfo(magnitude.dtype).eps)
        momentum = self.arch.get("consistency_momentum", 0.99)
        return consistency_projections(magnitude, angles, self.mel_spec, self.head.istft, n_iter, momentum)

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head.istft(self.spectrogram(mel))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        # Upstream files also hold the feature extractor's buffers and a persistent iSTFT window; neither
        # is a learned weight (the window is rebuilt from n_fft), so they are dropped here.
        state_dict = {
            k: v
            for k, v in state_dict.items()
            if not k.startswith("feature_extractor.") and not k.endswith("istft.window")
        }
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
