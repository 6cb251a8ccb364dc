"""Reference encoder: a voice latent from a few reference clips (Tortoise's conditioning encoder).

Tortoise turns each reference clip's mel into a latent with a conv + attention stack, averages it over
time and then over the clips. This is the same design at CPU size: two masked residual conv blocks,
transformer blocks (rotary self-attention over the clip's frames), masked mean over time, a projection,
then the mean over the clips. The first convolution halves the frame rate (stride 2): a voice is a property
of the whole clip, and the encoder then costs a quarter of what it would at full rate (attention included). Every operation is per item and masked, so a clip's latent depends neither
on the other clips in the batch nor on padding, and the voice latent does not depend on clip order.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tortoise_lite.models.blocks import MaskedGroupNorm, TransformerBlock, _groups

# Clips shorter than this many frames carry too little of a voice for the encoder's receptive field
# (two 5-frame convolutions and attention): 0.28 s at hop 256 / 22050 Hz.
MIN_REFERENCE_FRAMES = 24


class _ConvBlock(nn.Module):
    """Masked GroupNorm -> SiLU -> conv, with a residual connection. x (B, C, T), mask (B, T)."""

    def __init__(self, channels: int, kernel: int = 5, groups: int = 8) -> None:
        super().__init__()
        self.norm = MaskedGroupNorm(_groups(channels, groups), channels)
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None, :].to(x.dtype)
        return (x + self.conv(torch.nn.functional.silu(self.norm(x, mask)) * m)) * m


class ReferenceEncoder(nn.Module):
    """Reference clips -> one voice latent per item.

    Args:
        n_mels: mel bins of the (normalized) reference mels.
        channels: width of the conv/attention stack.
        out_dim: size of the voice latent.
        depth: transformer blocks after the convolutions.
        heads: attention heads.

    ``forward(mels (B, K, n_mels, T), lengths (B, K) long) -> (B, out_dim)``: clips with length 0 are
    absent (an item may have fewer than K clips; each item needs at least one).
    """

    def __init__(
        self, n_mels: int, channels: int = 128, out_dim: int = 128, depth: int = 1, heads: int = 2
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.out_dim = out_dim
        self.conv_in = nn.Conv1d(n_mels, channels, 4, stride=2, padding=1)
        self.convs = nn.ModuleList([_ConvBlock(channels), _ConvBlock(channels)])
        self.attn = nn.ModuleList([TransformerBlock(channels, heads, ff_mult=2.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, out_dim)

    def clip_latents(self, mels: Tensor, lengths: Tensor) -> Tensor:
        """mels (N, n_mels, T), lengths (N,) >= 1 -> per-clip latents (N, out_dim)."""
        T = mels.shape[-1] + mels.shape[-1] % 2
        mask = torch.arange(T, device=mels.device)[None, :] < lengths[:, None]
        x = torch.nn.functional.pad(mels, (0, T - mels.shape[-1])) * mask[:, None, :].to(mels.dtype)
        lengths = (lengths + 1) // 2  # frames after the stride-2 convolution
        mask = torch.arange(T // 2, device=mels.device)[None, :] < lengths[:, None]
        m = mask[:, None, :].to(mels.dtype)
        h = self.conv_in(x) * m
        for blk in self.convs:
            h = blk(h, mask)
        h = h.transpose(1, 2)  # (N, T, C)
        for blk in self.attn:
            h = blk(h, mask)
        h = self.norm(h) * mask[..., None].to(h.dtype)
        pooled = h.sum(1) / lengths.clamp_min(1)[:, None].to(h.dtype)
        return self.proj(pooled)

    def forward(self, mels: Tensor, lengths: Tensor) -> Tensor:
        if mels.ndim != 4 or mels.shape[2] != self.n_mels:
            raise ValueError(
                f"reference mels must be (B, K, n_mels={self.n_mels}, T), got {tuple(mels.shape)}"
            )
        B, K, C, T = mels.shape
        lengths = lengths.to(mels.device).long().reshape(B, K)
        present = lengths > 0
        # checked on the host only: on a GPU the read would make every training step wait for the device
        if lengths.device.type == "cpu" and not bool(present.any(-1).all()):
            raise ValueError("every item needs at least one reference clip (a clip with length > 0)")
        flat = present.reshape(-1)
        # only the clips that exist go through the encoder: an all-masked attention row is not computed
        z_present = self.clip_latents(mels.reshape(B * K, C, T)[flat], lengths.reshape(-1)[flat])
        z = z_present.new_zeros(B * K, self.out_dim).index_copy(0, flat.nonzero()[:, 0], z_present)
        z = z.reshape(B, K, -1)
        return z.sum(1) / present.sum(1, keepdim=True).clamp_min(1).to(z.dtype)
