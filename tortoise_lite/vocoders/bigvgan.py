"""BigVGAN generator (Lee et al. 2023), for running checkpoints users already have.

HiFi-GAN's layout with AMP blocks: every nonlinearity is a Snake / SnakeBeta periodic activation applied
at twice the sample rate between a Kaiser-windowed sinc upsampler and low-pass downsampler
("anti-aliased activation"). Parameter and buffer names follow NVIDIA/BigVGAN (``ups.N.0``,
``resblocks.N.activations.M.act.alpha``, ``...upsample.filter``, ``activation_post``) so its
``bigvgan_generator.pt`` loads after weight-norm fusion. Pure torch (no CUDA kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder, check_upsampling
from tortoise_lite.vocoders.hifigan import same_padding


class Snake(nn.Module):
    """``x + sin^2(a x) / a`` with a learned per-channel frequency ``a`` (stored as log when logscale)."""

    eps = 1e-9  # avoids division by zero for a -> 0, as upstream

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if alpha_logscale else torch.ones(channels))

    def _pos(self, p: torch.Tensor) -> torch.Tensor:
        p = p[None, :, None]
        return p.exp() if self.alpha_logscale else p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._pos(self.alpha)
        return x + torch.sin(x * a).square() / (a + self.eps)


class SnakeBeta(Snake):
    """``x + sin^2(a x) / b``: separate learned frequency ``a`` and magnitude ``b``."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__(channels, alpha_logscale)
        self.beta = nn.Parameter(torch.zeros(channels) if alpha_logscale else torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(x * self._pos(self.alpha)).square() / (self._pos(self.beta) + self.eps)


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Low-pass FIR ``(1, 1, kernel_size)``: sinc at ``cutoff`` (cycles/sample) under a Kaiser window.

    The Kaiser beta comes from Kaiser's empirical formulas for the attenuation implied by the transition
    width ``half_width``; taps are normalized to sum to 1 (unit DC gain).
    """
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta)
    if kernel_size % 2 == 0:
        t = torch.arange(-half, half) + 0.5
    else:
        t = torch.arange(kernel_size) - half
    if cutoff == 0:
        taps = torch.zeros_like(t)
    else:
        taps = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
        taps = taps / taps.sum()
    return taps.view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """``(B, C, S) -> (B, C, ratio * S)`` by zero-stuffing and low-pass filtering (transposed conv)."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        self.kernel_size = kernel_size or int(6 * ratio // 2) * 2
        self.pad = self.kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (self.kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (self.kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, self.kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.expand(channels, -1, -1), stride=self.ratio, groups=channels
        )
        return x[..., self.pad_left : -self.pad_right]


class LowPassFilter1d(nn.Module):
    """Replicate-padded depthwise FIR low-pass with a stride: ``(B, C, S) -> (B, C, S / stride)``."""

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int) -> None:
        super().__init__()
        even = kernel_size % 2 == 0
        self.pad_left, self.pad_right = kernel_size // 2 - int(even), kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class DownSample1d(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = kernel_size or int(6 * ratio // 2) * 2
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased activation: upsample x2, nonlinearity, low-pass and downsample x2."""

    def __init__(self, activation: nn.Module, up_ratio: int = 2, down_ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, kernel_size)
        self.downsample = DownSample1d(down_ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _activation(name: str, channels: int, logscale: bool) -> Activation1d:
    if name == "snake":
        return Activation1d(Snake(channels, logscale))
    if name == "snakebeta":
        return Activation1d(SnakeBeta(channels, logscale))
    raise ValueError(f"BigVGAN config: activation must be 'snake' or 'snakebeta', got {name!r}")


class AMPBlock1(nn.Module):
    """Three (activation, dilated conv, activation, conv) residual pairs. ``(B, C, S) -> (B, C, S)``."""

    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5), activation="snakebeta", logscale=True):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=same_padding(kernel_size)) for _ in dilation
        )
        self.activations = nn.ModuleList(
            _activation(activation, channels, logscale) for _ in range(2 * len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = self.activations
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts[::2], acts[1::2]):
            x = x + c2(a2(c1(a1(x))))
        return x


class AMPBlock2(nn.Module):
    """(activation, dilated conv) residual steps. ``(B, C, S) -> (B, C, S)``."""

    def __init__(self, channels, kernel_size=3, dilation=(1, 3), activation="snakebeta", logscale=True):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.activations = nn.ModuleList(_activation(activation, channels, logscale) for _ in dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c, a in zip(self.convs, self.activations):
            x = x + c(a(x))
        return x


class BigVGANGenerator(nn.Module):
    """Mel ``(B, num_mels, T)`` -> waveform ``(B, 1, T * prod(upsample_rates))``."""

    def __init__(
        self,
        num_mels: int = 100,
        upsample_rates: Sequence[int] = (4, 4, 2, 2, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (8, 8, 4, 4, 4, 4),
        upsample_initial_channel: int = 1536,
        resblock: str = "1",
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        activation: str = "snakebeta",
        snake_logscale: bool = True,
        use_tanh_at_final: bool = True,
        use_bias_at_final: bool = True,
    ) -> None:
        super().__init__()
        if str(resblock) not in ("1", "2"):
            raise ValueError(f"BigVGAN config: resblock must be '1' or '2', got {resblock!r}")
        block = AMPBlock1 if str(resblock) == "1" else AMPBlock2
        self.num_kernels = len(resblock_kernel_sizes)
        self.use_tanh_at_final = use_tanh_at_final
        self.conv_pre = nn.Conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            up = nn.ConvTranspose1d(upsample_initial_channel // (2**i), ch, k, u, padding=(k - u) // 2)
            self.ups.append(nn.ModuleList([up]))  # upstream nests each upsampler in a ModuleList
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, rk, rd, activation, snake_logscale))
        self.activation_post = _activation(activation, ch, snake_logscale)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=use_bias_at_final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            for layer in up:
                x = layer(x)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(b(x) for b in blocks) / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.use_tanh_at_final else x.clamp(-1.0, 1.0)


BIGVGAN_ARCH_KEYS = (
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "activation",
    "snake_logscale",
    "use_tanh_at_final",
    "use_bias_at_final",
)


class BigVGANVocoder(Vocoder):
    """A BigVGAN generator with its MelSpec. ``(B, n_mels, T) -> (B, T * hop)``."""

    def __init__(self, mel_spec: MelSpec, **arch) -> None:
        super().__init__(mel_spec)
        self.arch = {k: arch[k] for k in BIGVGAN_ARCH_KEYS if k in arch}
        self.generator = BigVGANGenerator(num_mels=self.mel_spec.n_mels, **self.arch)
        check_upsampling("BigVGAN", self.arch.get("upsample_rates", (4, 4, 2, 2, 2, 2)), self.mel_spec)

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)
