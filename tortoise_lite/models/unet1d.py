"""1-D denoiser: a U-Net over time with mel bins as channels.

Designed for speed on CPU: the first level is a thin (``channels[0]``) convolution stack at full frame
rate, then time is halved per level, and attention (rotary self-attention + masked cross-attention to
the text) runs only at the lowest resolution, where most parameters live. Any input length works:
time is padded internally to a multiple of ``2 ** (levels - 1)`` and every layer is masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tortoise_lite.models.blocks import (
    Downsample,
    MaskedGroupNorm,
    ResBlock,
    TimestepEmbedding,
    TransformerBlock,
    Upsample,
    _groups,
    downsample_mask,
)
from tortoise_lite.models.conditioning import Cond, CondEmbedder


def _check_inputs(x_t: Tensor, t: Tensor, cond: Cond, n_mels: int) -> None:
    if x_t.dim() != 3 or x_t.shape[1] != n_mels:
        raise ValueError(f"x_t must be (B, n_mels={n_mels}, T), got {tuple(x_t.shape)}")
    if t.shape != (x_t.shape[0],):
        raise ValueError(f"t must be (B,) = ({x_t.shape[0]},), got {tuple(t.shape)}")
    if cond.frame_mask.shape != (x_t.shape[0], x_t.shape[2]):
        raise ValueError(
            f"Cond.frame_mask must be (B, T) = {(x_t.shape[0], x_t.shape[2])}, got {tuple(cond.frame_mask.shape)}"
        )


class UNet1D(nn.Module):
    """denoiser(x_t (B, n_mels, T), t (B,) in [0, 1], cond: Cond) -> (B, n_mels, T), zero at padded frames.

    Args:
        n_mels: mel bins (input/output channels).
        channels: width per resolution level; level i runs at T / 2**i.
        res_blocks: residual blocks per level in each of the down and up paths (the first up block takes the skip).
        attn_depth: transformer blocks at the lowest resolution.
        heads: attention heads.
        cond_mode: ``aligned`` (Cond.frames concatenated to x_t) or ``cross_attention`` (Cond.tokens).
        cond_channels: channels of Cond.frames (aligned mode).
        context_dim: last dim of Cond.tokens (cross-attention mode).
        n_speakers: size of the optional speaker table (0 = none).
        voice_dim: size of the voice latent (``Cond.voice``) added to the timestep embedding (0 = none).
        cond_drop_prob: probability of replacing the condition by the learned null one in training.
    """

    def __init__(
        self,
        n_mels: int = 80,
        channels: Sequence[int] = (96, 192, 384),
        res_blocks: int = 1,
        attn_depth: int = 3,
        heads: int = 4,
        cond_mode: str = "aligned",
        cond_channels: int = 80,
        context_dim: int = 0,
        n_speakers: int = 0,
        cond_drop_prob: float = 0.1,
        voice_dim: int = 0,
        ff_mult: float = 4.0,
        groups: int = 8,
        dropout: float = 0.0,
        time_dim: int | None = None,
    ):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise ValueError("channels must list at least one level width")
        self.n_mels = n_mels
        self.channels = channels
        self.cond_mode = cond_mode
        self.levels = len(channels)
        emb_dim = time_dim or 2 * channels[0]
        self.time_emb = TimestepEmbedding(emb_dim)
        self.cond = CondEmbedder(
            cond_mode, emb_dim, cond_channels, context_dim, n_speakers, cond_drop_prob, voice_dim
        )
        in_ch = n_mels + (cond_channels if cond_mode == "aligned" else 0)
        self.conv_in = nn.Conv1d(in_ch, channels[0], 3, padding=1)

        def rb(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, dims=1, groups=groups, dropout=dropout)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down.append(nn.ModuleList([rb(prev if j == 0 else ch, ch) for j in range(res_blocks)]))
            prev = ch
            if i < self.levels - 1:
                self.downsample.append(Downsample(ch, dims=1))
        c_low = channels[-1]
        ctx = context_dim if cond_mode == "cross_attention" else None
        self.mid_in = rb(c_low, c_low)
        self.mid_attn = nn.ModuleList(
            [
                TransformerBlock(c_low, heads, context_dim=ctx, ff_mult=ff_mult, dropout=dropout)
                for _ in range(attn_depth)
            ]
        )
        self.mid_out = rb(c_low, c_low)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        prev = c_low
        for i in reversed(range(self.levels)):
            ch = channels[i]
            blocks = [rb(prev + ch, ch)] + [rb(ch, ch) for _ in range(res_blocks - 1)]
            self.up.append(nn.ModuleList(blocks))
            prev = ch
            if i > 0:
                self.upsample.append(
                    nn.ModuleDict(
                        {"proj": nn.Conv1d(ch, channels[i - 1], 1), "up": Upsample(channels[i - 1], dims=1)}
                    )
                )
                prev = channels[i - 1]
        self.norm_out = MaskedGroupNorm(_groups(channels[0], groups), channels[0])
        self.conv_out = nn.Conv1d(channels[0], n_mels, 3, padding=1)
        # zero-init output: the untrained denoiser predicts 0, a neutral start for every parameterization
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def multiple(self) -> int:
        """Internal time padding multiple."""
        return 2 ** (self.levels - 1)

    def forward(self, x_t: Tensor, t: Tensor, cond: Cond) -> Tensor:
        _check_inputs(x_t, t, cond, self.n_mels)
        b, _, T = x_t.shape
        emb = self.time_emb(t)
        frames, tokens, token_mask, emb = self.cond(cond, emb, x_t.dtype)
        pad = (-T) % self.multiple
        mask = F.pad(cond.frame_mask, (0, pad), value=False)
        m = mask[:, None, :].to(x_t.dtype)
        h = F.pad(x_t, (0, pad)) * m
        if frames is not None:
            h = torch.cat([h, F.pad(frames, (0, pad))], dim=1)
        h = self.conv_in(h) * m
        masks = [mask]
        skips = []
        for i, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb, masks[-1])
            skips.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
                masks.append(downsample_mask(masks[-1]))
                h = h * masks[-1][:, None, :].to(h.dtype)
        low = masks[-1]
        h = self.mid_in(h, emb, low)
        if len(self.mid_attn):
            h = h.transpose(1, 2)
            for blk in self.mid_attn:
                h = blk(h, low, tokens, token_mask)
            h = h.transpose(1, 2)
        h = self.mid_out(h, emb, low)
        for k, blocks in enumerate(self.up):
            level = self.levels - 1 - k
            mk = masks[level]
            h = torch.cat([h, skips[level]], dim=1)
            for blk in blocks:
                h = blk(h, emb, mk)
            if level > 0:
                up = self.upsample[k]
                h = up["up"](up["proj"](h), masks[level - 1]) * masks[level - 1][:, None, :].to(h.dtype)
        h = self.conv_out(F.silu(self.norm_out(h, mask)) * m) * m
        return h[:, :, :T]
