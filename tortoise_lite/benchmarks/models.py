"""Denoiser benchmark: ``python -m tortoise_lite.bench models [--threads N] [--repeats N] [--json PATH]``.

For each denoiser at its default size (and a reference re-implementation of Matcha-TTS's decoder):
parameters, forward+backward time and training throughput (mel frames / s) on a batch of
16 x 172 frames, peak memory, and inference time per NFE on 10 s of mel (frames from the default
MelSpec: 10 s * sample_rate / hop).

The Matcha reference follows ``matcha/models/components/decoder.py`` + ``transformer.py``
(Mehta et al., 2024) at its published defaults: channels (256, 256), 1 transformer block per level,
2 mid blocks, 2 heads of 64, SnakeBeta feed-forward, Mish conv blocks with GroupNorm(8), transposed-conv
upsampling, x and mu concatenated (160 input channels). It is written from the paper/code structure,
with masked attention done correctly (a key padding mask).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tortoise_lite.models.conditioning import Cond

# ----------------------------------------------------------------------------- Matcha reference


class _SnakeBeta(nn.Module):
    """Linear projection followed by x + 1/beta * sin^2(alpha x), alpha/beta on a log scale."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)
        self.log_alpha = nn.Parameter(torch.zeros(d_out))
        self.log_beta = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        alpha, beta = self.log_alpha.exp(), self.log_beta.exp()
        return x + torch.sin(x * alpha).pow(2) / (beta + 1e-9)


class _MatchaTransformer(nn.Module):
    """LayerNorm -> self-attention (heads x head_dim, no qkv bias) -> LayerNorm -> SnakeBeta FF (x4)."""

    def __init__(self, dim: int, heads: int = 2, head_dim: int = 64, dropout: float = 0.05):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, inner, bias=False)
        self.k = nn.Linear(dim, inner, bias=False)
        self.v = nn.Linear(dim, inner, bias=False)
        self.o = nn.Linear(inner, dim)
        self.drop = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(_SnakeBeta(dim, 4 * dim), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, t, _ = x.shape
        h = self.norm1(x)
        q, k, v = (
            f(h).view(b, t, self.heads, self.head_dim).transpose(1, 2) for f in (self.q, self.k, self.v)
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.drop(self.o(a.transpose(1, 2).reshape(b, t, -1)))
        return x + self.ff(self.norm3(x))


class _Block1D(nn.Module):
    def __init__(self, d_in: int, d_out: int, groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(d_in, d_out, 3, padding=1), nn.GroupNorm(groups, d_out), nn.Mish()
        )

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        return self.block(x * m) * m


class _ResnetBlock1D(nn.Module):
    def __init__(self, d_in: int, d_out: int, t_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(t_dim, d_out))
        self.block1, self.block2 = _Block1D(d_in, d_out), _Block1D(d_out, d_out)
        self.res = nn.Conv1d(d_in, d_out, 1)

    def forward(self, x: Tensor, m: Tensor, temb: Tensor) -> Tensor:
        h = self.block1(x, m) + self.mlp(temb)[:, :, None]
        return self.block2(h, m) + self.res(x * m)


class MatchaDecoderReference(nn.Module):
    """Matcha-TTS decoder architecture (U-Net, 2 levels x 256 ch, transformer blocks, SnakeBeta).

    forward(x (B, n_mels, T), mask (B, T) bool, mu (B, n_mels, T), t (B,)) -> (B, n_mels, T).
    T must be even (Matcha pads/crops to a multiple of 2 outside the decoder).
    """

    def __init__(
        self, n_mels: int = 80, channels: tuple[int, ...] = (256, 256), n_blocks: int = 1, n_mid: int = 2
    ):
        super().__init__()
        in_ch = 2 * n_mels
        t_dim = 4 * channels[0]
        self.freq_dim = in_ch
        self.time_mlp = nn.Sequential(nn.Linear(in_ch, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.down = nn.ModuleList()
        out = in_ch
        for i, ch in enumerate(channels):
            inp, out = out, ch
            last = i == len(channels) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        _ResnetBlock1D(inp, out, t_dim),
                        nn.ModuleList([_MatchaTransformer(out) for _ in range(n_blocks)]),
                        nn.Conv1d(out, out, 3, padding=1) if last else nn.Conv1d(out, out, 3, 2, 1),
                    ]
                )
            )
        self.mid = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        _ResnetBlock1D(out, out, t_dim),
                        nn.ModuleList([_MatchaTransformer(out) for _ in range(n_blocks)]),
                    ]
                )
                for _ in range(n_mid)
            ]
        )
        chs = channels[::-1] + (channels[0],)
        self.up = nn.ModuleList()
        for i in range(len(chs) - 1):
            last = i == len(chs) - 2
            self.up.append(
                nn.ModuleList(
                    [
                        _ResnetBlock1D(2 * chs[i], chs[i + 1], t_dim),
                        nn.ModuleList([_MatchaTransformer(chs[i + 1]) for _ in range(n_blocks)]),
                        nn.Conv1d(chs[i + 1], chs[i + 1], 3, padding=1)
                        if last
                        else nn.ConvTranspose1d(chs[i + 1], chs[i + 1], 4, 2, 1),
                    ]
                )
            )
        self.final_block = _Block1D(chs[-1], chs[-1])
        self.final_proj = nn.Conv1d(chs[-1], n_mels, 1)

    @staticmethod
    def _attn(blocks: nn.ModuleList, x: Tensor, mask: Tensor) -> Tensor:
        x = x.transpose(1, 2)
        for blk in blocks:
            x = blk(x, mask)
        return x.transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=x.device) / (half - 1))
        arg = 1000 * t[:, None] * freqs[None]
        temb = self.time_mlp(torch.cat([arg.sin(), arg.cos()], -1))
        h = torch.cat([x, mu], 1)
        masks, skips = [mask], []
        for res, blocks, down in self.down:
            mk = masks[-1]
            m = mk[:, None].to(h.dtype)
            h = self._attn(blocks, res(h, m, temb), mk)
            skips.append(h)
            h = down(h * m)
            masks.append(mk[:, ::2])
        masks = masks[:-1]
        mk = masks[-1]
        for res, blocks in self.mid:
            h = self._attn(blocks, res(h, mk[:, None].to(h.dtype), temb), mk)
        for res, blocks, up in self.up:
            mk = masks.pop()
            m = mk[:, None].to(h.dtype)
            h = self._attn(blocks, res(torch.cat([h, skips.pop()], 1), m, temb), mk)
            h = up(h * m)
        m = mask[:, None].to(h.dtype)
        return self.final_proj(self.final_block(h, m) * m) * m


# ----------------------------------------------------------------------------- measurement


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _bench(
    name: str, model: nn.Module, call: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], args
) -> dict:
    n_mels, b, t_train, t_inf = args.n_mels, args.batch, args.frames, args.infer_frames
    torch.manual_seed(0)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(b, n_mels, t_train)
    mask = torch.ones(b, t_train, dtype=torch.bool)
    mask[b // 2 :, t_train - t_train // 8 :] = False  # realistic padding in half the batch
    mu = torch.randn(b, n_mels, t_train)
    t = torch.rand(b)
    model.train()
    gc.collect()
    rss0 = _peak_rss_mb()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        call(model, x, mask, mu, t).square().mean().backward()

    train_s = _time(step, args.repeats)
    rss_train = _peak_rss_mb()
    model.eval()
    xi, mi, mui = (
        torch.randn(1, n_mels, t_inf),
        torch.ones(1, t_inf, dtype=torch.bool),
        torch.randn(1, n_mels, t_inf),
    )
    ti = torch.rand(1)

    def infer() -> None:
        with torch.inference_mode():
            call(model, xi, mi, mui, ti)

    nfe_s = _time(infer, args.repeats * 2)
    return {
        "model": name,
        "params_M": round(params / 1e6, 3),
        "fwd_bwd_ms": round(train_s * 1e3, 1),
        "train_frames_per_s": round(b * t_train / train_s, 1),
        "infer_ms_per_nfe_10s": round(nfe_s * 1e3, 1),
        "peak_rss_MB": round(max(rss_train, _peak_rss_mb()), 1),
        "peak_rss_growth_MB": round(max(rss_train - rss0, 0.0), 1),
    }


def _ours(m: nn.Module, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor) -> Tensor:
    return m(x, t, Cond(frames=mu, frame_mask=mask))


def _matcha(m: nn.Module, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor) -> Tensor:
    return m(x, mask, mu, t)


def main(argv: list[str]) -> int:
    from tortoise_lite.models.unet1d import UNet1D
    from tortoise_lite.models.unet2d import UNet2D

    p = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench models", description=__doc__.splitlines()[0]
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=172, help="training frames per item (2 s at 22050/256)")
    p.add_argument("--seconds", type=float, default=10.0, help="inference length in seconds")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="unet1d,matcha,unet2d", help="comma list of unet1d,matcha,unet2d")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        from tortoise_lite.audio.mel import MelSpec

        spec = MelSpec()
        args.n_mels = spec.n_mels
        args.infer_frames = spec.num_frames(int(round(args.seconds * spec.sample_rate)))
    except ImportError:  # audio package not there yet: HiFi-GAN defaults
        args.n_mels = 80
        args.infer_frames = int(args.seconds * 22050) // 256
    args.infer_frames += args.infer_frames % 2  # the Matcha reference needs an even length
    rows = []
    wanted = args.only.split(",")
    if "unet1d" in wanted:
        rows.append(
            _bench("unet1d (ours)", UNet1D(n_mels=args.n_mels, cond_channels=args.n_mels), _ours, args)
        )
    if "matcha" in wanted:
        rows.append(_bench("matcha decoder (reference)", MatchaDecoderReference(args.n_mels), _matcha, args))
    if "unet2d" in wanted:
        rows.append(
            _bench("unet2d (ours)", UNet2D(n_mels=args.n_mels, cond_channels=args.n_mels), _ours, args)
        )
    print(
        f"threads={args.threads} train batch={args.batch}x{args.frames} frames, inference 1x{args.infer_frames} frames"
    )
    cols = list(rows[0].keys())
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    by = {r["model"]: r for r in rows}
    if "unet1d (ours)" in by and "matcha decoder (reference)" in by:
        ratio = (
            by["unet1d (ours)"]["train_frames_per_s"] / by["matcha decoder (reference)"]["train_frames_per_s"]
        )
        print(f"training throughput unet1d / matcha = {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
