"""HiFi-GAN generator (Kong et al. 2020), for running checkpoints users already have.

Layout and parameter names follow jik876/hifi-gan (``conv_pre``, ``ups.N``, ``resblocks.N.convs1.M``,
``conv_post``) so its ``g_XXXXXXXX`` files load after weight-norm fusion; the convolutions here are
plain (weight norm only matters for training).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder, check_upsampling

LRELU_SLOPE = 0.1  # HiFi-GAN's leaky-ReLU slope inside the generator


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with leaky ReLUs and residuals. ``(B, C, S) -> (B, C, S)``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=same_padding(kernel_size)) for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Dilated convs with leaky ReLUs and residuals (HiFi-GAN V3). ``(B, C, S) -> (B, C, S)``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """Mel ``(B, num_mels, T)`` -> waveform ``(B, 1, T * prod(upsample_rates))``."""

    def __init__(
        self,
        num_mels: int = 80,
        upsample_rates: Sequence[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock: str = "1",
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    ) -> None:
        super().__init__()
        if str(resblock) not in ("1", "2"):
            raise ValueError(f"HiFi-GAN config: resblock must be '1' or '2', got {resblock!r}")
        block = ResBlock1 if str(resblock) == "1" else ResBlock2
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            self.ups.append(
                nn.ConvTranspose1d(upsample_initial_channel // (2**i), ch, k, u, padding=(k - u) // 2)
            )
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, rk, rd))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(b(x) for b in blocks) / self.num_kernels
        # Upstream uses leaky_relu's default slope (0.01) here, not LRELU_SLOPE.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


HIFIGAN_ARCH_KEYS = (
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)


class HiFiGANVocoder(Vocoder):
    """A HiFi-GAN generator with its MelSpec. ``(B, n_mels, T) -> (B, T * hop)``."""

    def __init__(self, mel_spec: MelSpec, **arch) -> None:
        super().__init__(mel_spec)
        self.arch = {k: arch[k] for k in HIFIGAN_ARCH_KEYS if k in arch}
        self.generator = HiFiGANGenerator(num_mels=self.mel_spec.n_mels, **self.arch)
        check_upsampling("HiFi-GAN", self.arch.get("upsample_rates", (8, 8, 2, 2)), self.mel_spec)

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)
