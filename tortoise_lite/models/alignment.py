"""Monotonic alignment search (Glow-TTS) and duration <-> path helpers.

``maximum_path`` finds, for each item, the monotonic non-skipping alignment of L tokens to T frames
(every frame takes exactly one token, every token at least one frame, token index never decreases)
that maximizes the summed log-likelihood. Two implementations with identical results:
``numba`` (per-item loops compiled in parallel; default) and ``torch`` (frames looped, batch and
tokens vectorized; runs on any device).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

try:
    import numba

    @numba.njit(cache=True, nogil=True)
    def _mas_one(value: np.ndarray, t_x: int, t_y: int, path: np.ndarray) -> None:
        neg = -1e9
        for y in range(t_y):
            for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
                v_cur = neg if x == y else value[x, y - 1]
                if x == 0:
                    v_prev = 0.0 if y == 0 else neg
                else:
                    v_prev = value[x - 1, y - 1]
                value[x, y] += max(v_prev, v_cur)
        index = t_x - 1
        for y in range(t_y - 1, -1, -1):
            path[index, y] = 1
            if index != 0 and (index == y or value[index, y - 1] < value[index - 1, y - 1]):
                index -= 1

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _mas_batch(values: np.ndarray, t_xs: np.ndarray, t_ys: np.ndarray, paths: np.ndarray) -> None:
        for i in numba.prange(values.shape[0]):
            _mas_one(values[i], t_xs[i], t_ys[i], paths[i])

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency, keep the torch path usable anyway
    HAVE_NUMBA = False


def _check(log_p: Tensor, token_lengths: Tensor, frame_lengths: Tensor) -> None:
    if log_p.dim() != 3:
        raise ValueError(f"log_p must be (B, L, T), got {tuple(log_p.shape)}")
    if bool((frame_lengths < token_lengths).any()):
        bad = torch.nonzero(frame_lengths < token_lengths).flatten().tolist()
        raise ValueError(
            f"monotonic alignment needs at least one frame per token; items {bad} have fewer frames "
            f"({frame_lengths[bad].tolist()}) than tokens ({token_lengths[bad].tolist()})"
        )


@torch.no_grad()
def maximum_path(
    log_p: Tensor, token_lengths: Tensor, frame_lengths: Tensor, backend: str = "auto"
) -> Tensor:
    """log_p (B, L, T) log-likelihood of frame t under token j -> path (B, L, T) float 0/1.

    token_lengths, frame_lengths: (B,) long. ``backend``: "auto" (numba if installed), "numba", "torch".
    """
    _check(log_p, token_lengths, frame_lengths)
    if backend == "auto":
        backend = "numba" if HAVE_NUMBA else "torch"
    if backend == "numba":
        if not HAVE_NUMBA:
            raise RuntimeError("backend='numba' requested but numba is not installed (pip install numba)")
        values = log_p.detach().float().cpu().numpy().astype(np.float32).copy()
        paths = np.zeros(values.shape, dtype=np.int32)
        _mas_batch(
            values,
            token_lengths.cpu().numpy().astype(np.int64),
            frame_lengths.cpu().numpy().astype(np.int64),
            paths,
        )
        return torch.from_numpy(paths).to(device=log_p.device, dtype=log_p.dtype)
    if backend == "torch":
        return _maximum_path_torch(log_p, token_lengths, frame_lengths)
    raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")


def _maximum_path_torch(log_p: Tensor, token_lengths: Tensor, frame_lengths: Tensor) -> Tensor:
    b, L, T = log_p.shape
    device = log_p.device
    neg = torch.tensor(-1e9, device=device, dtype=torch.float32)
    lp = log_p.float()
    j = torch.arange(L, device=device)[None, :]  # (1, L)
    tok_ok = j < token_lengths[:, None]  # (B, L)
    q = torch.full((b, L), -1e9, device=device)
    q[:, 0] = lp[:, 0, 0]
    q = torch.where(tok_ok, q, neg)
    # choice[:, j, t] = True when the best path into (j, t) came from token j-1 at frame t-1
    from_prev = torch.zeros(b, L, T, dtype=torch.bool, device=device)
    for t in range(1, T):
        stay = q
        move = torch.cat([torch.full((b, 1), -1e9, device=device), q[:, :-1]], dim=1)
        take_move = move > stay
        new = torch.maximum(stay, move) + lp[:, :, t]
        # frames past an item's length keep the old values (they are never read in the backtrack)
        active = (t < frame_lengths)[:, None]
        q = torch.where(active & tok_ok, new, torch.where(active, neg, q))
        from_prev[:, :, t] = take_move
    path = torch.zeros(b, L, T, device=device, dtype=log_p.dtype)
    idx = token_lengths - 1  # (B,)
    ar = torch.arange(b, device=device)
    for t in range(T - 1, -1, -1):
        inside = t < frame_lengths
        path[ar, idx.clamp_min(0), t] = torch.where(inside, 1.0, 0.0).to(path.dtype)
        step = inside & from_prev[ar, idx.clamp_min(0), t] & (idx > 0)
        idx = idx - step.long()
    return path


def durations_from_path(path: Tensor) -> Tensor:
    """path (B, L, T) -> durations (B, L) long (frames per token)."""
    return path.sum(-1).round().long()


def path_from_durations(durations: Tensor, n_frames: int | None = None) -> Tensor:
    """durations (B, L) long -> path (B, L, T) float 0/1 with T = n_frames or the longest total."""
    ends = durations.cumsum(-1)  # (B, L)
    T = int(ends[:, -1].max()) if n_frames is None else n_frames
    starts = ends - durations
    frames = torch.arange(T, device=durations.device)[None, None, :]
    return ((frames >= starts[..., None]) & (frames < ends[..., None])).float()


def expand_by_durations(h: Tensor, durations: Tensor, n_frames: int | None = None) -> Tensor:
    """Repeat token features by their durations: h (B, L, C), durations (B, L) -> (B, C, T)."""
    path = path_from_durations(durations, n_frames).to(h.dtype)
    return torch.einsum("blt,blc->bct", path, h)


def gaussian_log_likelihood(x: Tensor, mu: Tensor) -> Tensor:
    """Unit-variance Gaussian log-likelihood of each frame under each token's mean (Glow-TTS/Grad-TTS).

    x (B, C, T) frames, mu (B, L, C) token means -> (B, L, T). Computed as
    -0.5 * (|x|^2 - 2 mu.x + |mu|^2) - 0.5 * C * log(2 pi): one matmul instead of an (L, T, C) tensor.
    """
    c = x.shape[1]
    x = x.float()
    mu = mu.float()
    cross = torch.einsum("blc,bct->blt", mu, x)
    xx = x.square().sum(1)[:, None, :]
    mm = mu.square().sum(-1)[:, :, None]
    return -0.5 * (xx - 2 * cross + mm) - 0.5 * c * float(np.log(2 * np.pi))
