"""GAN discriminators and losses for training the neural vocoder.

* ``MultiPeriodDiscriminator`` (HiFi-GAN): the waveform folded into ``(S / p, p)`` for several primes ``p``,
  2-D convs along time only, so each sub-discriminator sees one periodic structure.
* ``MultiResolutionDiscriminator`` (UnivNet / Vocos): 2-D convs over STFT magnitudes at several resolutions.

Channel widths are arguments: the defaults are narrower than upstream so a CPU budget buys more steps.
Every discriminator returns ``(logits, feature_maps)`` for real and fake inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LRELU_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    """Waveform ``(B, 1, S)`` -> logits ``(B, N)`` and feature maps, viewed with period ``period``."""

    def __init__(
        self, period: int, channels: Sequence[int] = (32, 64, 128, 256), kernel_size: int = 5, stride: int = 3
    ):
        super().__init__()
        self.period = period
        chans = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (kernel_size, 1), (stride, 1), padding=(kernel_size // 2, 0)))
            for cin, cout in zip(chans[:-1], chans[1:])
        )
        self.convs.append(
            weight_norm(nn.Conv2d(chans[-1], chans[-1], (kernel_size, 1), 1, padding=(kernel_size // 2, 0)))
        )
        self.conv_post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, c, -1, self.period)
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmaps.append(x)
        x = self.conv_post(x)
        fmaps.append(x)
        return x.flatten(1), fmaps


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 64, 128, 256)
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """``wav`` ``(B, S)`` -> per-period logits and feature maps."""
        outs = [d(wav.unsqueeze(1)) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    """Log-ish STFT magnitude ``(B, 1, F, T)`` -> logits; convs stride along frequency."""

    def __init__(self, n_fft: int, hop: int, channels: int = 32, num_layers: int = 4):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        layers = [weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4)))]
        layers += [
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)))
            for _ in range(num_layers)
        ]
        layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(
            wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True
        ).abs()
        x = spec.transpose(1, 2).unsqueeze(1)  # (B, 1, T, F): stride over frequency
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmaps.append(x)
        x = self.conv_post(x)
        fmaps.append(x)
        return x.flatten(1), fmaps


class MultiResolutionDiscriminator(nn.Module):
    def __init__(
        self, fft_sizes: Sequence[int] = (2048, 1024, 512), channels: int = 32, hop_divisor: int = 4
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(n, n // hop_divisor, channels) for n in fft_sizes
        )

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


# ----- losses (hinge GAN, as Vocos) ------------------------------------------------------------------------
def discriminator_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge loss: push real logits above +1 and fake logits below -1 (mean over sub-discriminators)."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


def generator_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge generator loss: raise the fake logits (mean over sub-discriminators)."""
    return sum(F.relu(1 - f).mean() for f in fake) / len(fake)


def feature_matching_loss(
    real_maps: Sequence[Sequence[torch.Tensor]], fake_maps: Sequence[Sequence[torch.Tensor]]
):
    """Mean L1 between the discriminator's hidden features on real and generated audio."""
    terms = [(r.detach() - f).abs().mean() for rm, fm in zip(real_maps, fake_maps) for r, f in zip(rm, fm)]
    return sum(terms) / len(terms)
