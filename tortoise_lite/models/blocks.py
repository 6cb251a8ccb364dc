"""Building blocks shared by the denoisers and the text encoders.

Every block that mixes information along time takes a boolean ``mask`` (B, T) (True = real frame) and
guarantees that padded frames never influence real frames: inputs are zeroed before convolutions,
normalization statistics are computed over real frames only, and attention ignores padded keys.
This is what makes "padding never changes the outputs for real frames" hold for the whole U-Net.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _mask_like(mask: Tensor, x: Tensor) -> Tensor:
    """(B, T) bool -> float mask broadcastable to x (B, C, ..., T)."""
    return mask.to(x.dtype).view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1])


def timestep_embedding(t: Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of continuous time. t (B,) in [0, 1] -> (B, dim) float32.

    ``scale`` stretches [0, 1] so the lowest frequencies still resolve neighbouring discrete steps.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = scale * t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """t (B,) -> (B, out_dim): sinusoidal features followed by a 2-layer MLP."""

    def __init__(self, out_dim: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics use real frames only.

    x (B, C, ..., T) must be ZERO at padded frames (every block here keeps that invariant), which
    lets the statistics come from two plain reductions. mask (B, T) bool or None (= all real).
    ``scale``/``shift`` (B, C) fold a FiLM modulation ``y * (1 + scale) + shift`` into the same affine.
    The output is NOT zero at padded frames; multiply by the mask before the next convolution.
    """

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        mask: Tensor | None = None,
        scale: Tensor | None = None,
        shift: Tensor | None = None,
    ) -> Tensor:
        b, c = x.shape[:2]
        g = self.num_groups
        # elements of one group in one frame (a product of the static sizes between C and T: no division by
        # the symbolic T under torch.compile's dynamic shapes, where inductor failed on it)
        per_frame = math.prod(x.shape[2:-1]) * (c // g)
        if mask is None:
            count = torch.full((b, 1), float(per_frame * x.shape[-1]), device=x.device)
        else:
            count = mask.sum(-1, keepdim=True).float().clamp_min(1.0) * per_frame
        # fp32 statistics: bf16 sums over thousands of frames lose the variance
        xg = x.reshape(b, g, -1)
        s1 = xg.sum(-1, dtype=torch.float32)
        s2 = torch.linalg.vector_norm(xg, dim=-1, dtype=torch.float32).square()
        mean = s1 / count
        var = (s2 / count - mean.square()).clamp_min(0.0)
        rstd = torch.rsqrt(var + self.eps)
        a = rstd.repeat_interleave(c // g, dim=1)  # (B, C)
        off = -mean.repeat_interleave(c // g, dim=1) * a
        if self.affine:
            a = a * self.weight
            off = off * self.weight + self.bias
        if scale is not None:
            a = a * (1 + scale)
            off = off * (1 + scale)
        if shift is not None:
            off = off + shift
        shape = (b, c) + (1,) * (x.dim() - 2)
        return torch.addcmul(off.view(shape).to(x.dtype), x, a.view(shape).to(x.dtype))


def _groups(channels: int, groups: int) -> int:
    g = math.gcd(channels, groups)
    return max(g, 1)


class ResBlock(nn.Module):
    """Residual conv block with masked GroupNorm and timestep scale/shift (FiLM).

    ``dims=1``: x (B, C, T); ``dims=2``: x (B, C, F, T). ``emb`` (B, emb_dim). mask (B, T) bool.
    h = conv(silu(norm(x))); h = conv(silu(norm(h) * (1 + scale) + shift)); out = skip(x) + h.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        dims: int = 1,
        groups: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        pad = kernel_size // 2
        self.norm1 = MaskedGroupNorm(_groups(in_ch, groups), in_ch)
        self.conv1 = conv(in_ch, out_ch, kernel_size, padding=pad)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = MaskedGroupNorm(_groups(out_ch, groups), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_ch, out_ch, kernel_size, padding=pad)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        # residual branch starts as identity: stabilises deep U-Nets at init
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor, mask: Tensor) -> Tensor:
        """x (B, C, [F,] T) zero at padded frames; emb (B, emb_dim); mask (B, T) -> zero at padded frames."""
        m = _mask_like(mask, x)
        h = self.conv1(F.silu(self.norm1(x, mask)) * m) * m
        scale, shift = self.emb(F.silu(emb)).float().chunk(2, dim=1)
        h = F.silu(self.norm2(h, mask, scale, shift)) * m
        h = self.conv2(self.dropout(h))
        return (self.skip(x) + h) * m


class Downsample(nn.Module):
    """Stride-2 conv along time (and frequency for ``dims=2``). Input must be zero at padded frames."""

    def __init__(self, channels: int, dims: int = 1):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.conv = conv(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _repeat2(x: Tensor) -> Tensor:
    """Nearest-neighbour x2 along every dim after (B, C): the values of ``F.interpolate(x, scale_factor=2)``
    without its float scale (in / out sizes), which inductor failed on under dynamic shapes
    (TensorReferenceAnalysis has no attribute 'python_mod')."""
    for d in range(2, x.dim()):
        shape = list(x.shape)
        shape.insert(d + 1, 2)
        x = x.unsqueeze(d + 1).expand(shape).flatten(d, d + 1)
    return x


class Upsample(nn.Module):
    """Nearest x2 then 3-tap conv (no checkerboard artifacts of transposed convs)."""

    def __init__(self, channels: int, dims: int = 1):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.conv = conv(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, C, ..., T/2) -> (B, C, ..., T); ``mask`` (B, T) is the high-resolution mask."""
        up = _repeat2(x)
        return self.conv(up * _mask_like(mask, up))


def downsample_mask(mask: Tensor) -> Tensor:
    """(B, T) -> (B, ceil(T/2)): a low-resolution frame is real when its first source frame is real.

    With zeros at padded frames and a stride-2/padding-1 conv this matches the unpadded computation.
    """
    return mask[:, ::2]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer) over the sequence axis of (B, H, T, Dh) tensors."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def cos_sin(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        pos = torch.arange(length, device=device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq.to(device)[None]  # (T, Dh/2)
        return freqs.cos(), freqs.sin()

    @staticmethod
    def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        # rotate pairs (x1, x2) of the two halves of the head dimension
        x1, x2 = x.float().chunk(2, dim=-1)
        out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        return out.to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with a key padding mask; rotary positions for self-attention.

    x (B, T, dim); context (B, S, context_dim) or None (self-attention); key_mask (B, S) bool.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, rotary: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.is_cross = context_dim is not None
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.rotary = RotaryEmbedding(self.head_dim) if (rotary and not self.is_cross) else None

    def forward(self, x: Tensor, key_mask: Tensor, context: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        ctx = x if context is None else context
        q = self.to_q(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.to_kv(ctx).view(b, ctx.shape[1], 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            cos, sin = self.rotary.cos_sin(t, x.device)
            q, k = self.rotary.apply(q, cos, sin), self.rotary.apply(k, cos, sin)
        attn_mask = key_mask[:, None, None, :]  # (B, 1, 1, S): True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: rotary self-attention, optional masked cross-attention, GELU MLP.

    x (B, T, dim), mask (B, T) bool, context (B, S, context_dim), context_mask (B, S) bool.
    Output is zero at padded frames.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        context_dim: int | None = None,
        ff_mult: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.cross = None
        if context_dim is not None:
            self.norm_c = nn.LayerNorm(dim)
            self.cross = Attention(dim, heads, context_dim=context_dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * ff_mult)
        self.ff = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        m = mask[..., None].to(x.dtype)
        x = x + self.dropout(self.attn(self.norm1(x), mask))
        if self.cross is not None:
            if context is None or context_mask is None:
                raise ValueError("this transformer block has cross-attention: pass context and context_mask")
            x = x + self.dropout(self.cross(self.norm_c(x), context_mask, context))
        x = x + self.dropout(self.ff(self.norm2(x)))
        return x * m
