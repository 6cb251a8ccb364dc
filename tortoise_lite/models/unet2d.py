"""2-D denoiser: a U-Net over (mel bin, time) with the same interface as the 1-D one.

x_t (B, n_mels, T) is treated as a one-channel image (B, 1, n_mels, T) (aligned conditioning adds a
second plane: Cond.frames projected to n_mels rows). Conv2d residual blocks halve frequency and time
per level. At the lowest resolution the frequency rows are folded into the channels and a stack of
transformer blocks attends over time (rotary self-attention + masked cross-attention to the text):
one token per low-resolution frame, so attention cost stays linear in n_mels.
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
from tortoise_lite.models.unet1d import _check_inputs


class UNet2D(nn.Module):
    """denoiser(x_t (B, n_mels, T), t (B,) in [0, 1], cond: Cond) -> (B, n_mels, T), zero at padded frames.

    Args:
        n_mels: mel bins (image height).
        channels: conv channels per level; level i runs at (n_mels / 2**i, T / 2**i).
        res_blocks: residual blocks per level in each of the down and up paths.
        attn_dim: transformer width at the lowest resolution (frequency rows folded into tokens).
        attn_depth, heads: transformer blocks and heads.
        cond_mode, cond_channels, context_dim, n_speakers, cond_drop_prob, voice_dim: as in ``UNet1D``.
    """

    def __init__(
        self,
        n_mels: int = 80,
        channels: Sequence[int] = (32, 64, 128),
        res_blocks: int = 1,
        attn_dim: int = 256,
        attn_depth: int = 2,
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
        self.n_mels = n_mels
        self.channels = channels
        self.levels = len(channels)
        self.cond_mode = cond_mode
        emb_dim = time_dim or 4 * channels[0]
        self.time_emb = TimestepEmbedding(emb_dim)
        self.cond = CondEmbedder(
            cond_mode, emb_dim, cond_channels, context_dim, n_speakers, cond_drop_prob, voice_dim
        )
        self.n_mels_padded = n_mels + (-n_mels) % self.multiple
        # aligned features become one extra image plane of n_mels rows
        self.cond_proj = nn.Conv1d(cond_channels, n_mels, 1) if cond_mode == "aligned" else None
        self.conv_in = nn.Conv2d(2 if cond_mode == "aligned" else 1, channels[0], 3, padding=1)

        def rb(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, dims=2, groups=groups, dropout=dropout)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down.append(nn.ModuleList([rb(prev if j == 0 else ch, ch) for j in range(res_blocks)]))
            prev = ch
            if i < self.levels - 1:
                self.downsample.append(Downsample(ch, dims=2))
        c_low = channels[-1]
        f_low = self.n_mels_padded // self.multiple
        ctx = context_dim if cond_mode == "cross_attention" else None
        self.mid_in = rb(c_low, c_low)
        self.fold_in = nn.Linear(c_low * f_low, attn_dim)
        self.mid_attn = nn.ModuleList(
            [
                TransformerBlock(attn_dim, heads, context_dim=ctx, ff_mult=ff_mult, dropout=dropout)
                for _ in range(attn_depth)
            ]
        )
        self.fold_out = nn.Linear(attn_dim, c_low * f_low)
        nn.init.zeros_(self.fold_out.weight)
        nn.init.zeros_(self.fold_out.bias)
        self.mid_out = rb(c_low, c_low)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        prev = c_low
        for i in reversed(range(self.levels)):
            ch = channels[i]
            self.up.append(nn.ModuleList([rb(prev + ch, ch)] + [rb(ch, ch) for _ in range(res_blocks - 1)]))
            prev = ch
            if i > 0:
                self.upsample.append(
                    nn.ModuleDict(
                        {"proj": nn.Conv2d(ch, channels[i - 1], 1), "up": Upsample(channels[i - 1], dims=2)}
                    )
                )
                prev = channels[i - 1]
        self.norm_out = MaskedGroupNorm(_groups(channels[0], groups), channels[0])
        self.conv_out = nn.Conv2d(channels[0], 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def forward(self, x_t: Tensor, t: Tensor, cond: Cond) -> Tensor:
        _check_inputs(x_t, t, cond, self.n_mels)
        b, n_mels, T = x_t.shape
        emb = self.time_emb(t)
        frames, tokens, token_mask, emb = self.cond(cond, emb, x_t.dtype)
        pad_t = (-T) % self.multiple
        pad_f = self.n_mels_padded - n_mels
        mask = F.pad(cond.frame_mask, (0, pad_t), value=False)
        m2 = mask[:, None, None, :].to(x_t.dtype)
        planes = [x_t]
        if frames is not None:
            planes.append(self.cond_proj(frames))
        h = torch.stack(planes, dim=1)  # (B, P, n_mels, T)
        h = F.pad(h, (0, pad_t, 0, pad_f)) * m2
        h = self.conv_in(h) * m2
        masks = [mask]
        skips = []
        for i, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb, masks[-1])
            skips.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
                masks.append(downsample_mask(masks[-1]))
                h = h * masks[-1][:, None, None, :].to(h.dtype)
        low = masks[-1]
        h = self.mid_in(h, emb, low)
        if len(self.mid_attn):
            bb, c, f, tt = h.shape
            seq = self.fold_in(h.permute(0, 3, 1, 2).reshape(bb, tt, c * f))  # (B, T', attn_dim)
            for blk in self.mid_attn:
                seq = blk(seq, low, tokens, token_mask)
            delta = self.fold_out(seq).view(bb, tt, c, f).permute(0, 2, 3, 1)
            h = h + delta * low[:, None, None, :].to(h.dtype)
        h = self.mid_out(h, emb, low)
        for k, blocks in enumerate(self.up):
            level = self.levels - 1 - k
            h = torch.cat([h, skips[level]], dim=1)
            for blk in blocks:
                h = blk(h, emb, masks[level])
            if level > 0:
                up = self.upsample[k]
                hi = masks[level - 1]
                h = up["up"](up["proj"](h), hi) * hi[:, None, None, :].to(h.dtype)
        h = self.conv_out(F.silu(self.norm_out(h, mask)) * m2) * m2
        return h[:, 0, :n_mels, :T]
