"""Matplotlib figures for synthesis and evaluation (object-oriented API on the Agg canvas: no pyplot
state, no display needed, safe in worker processes)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tortoise_lite.audio.mel import MelSpec

DPI = 110


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def save_mel_png(
    path: str | os.PathLike, mel: torch.Tensor | np.ndarray, mel_spec: MelSpec, title: str = ""
) -> Path:
    """A log-mel ``(n_mels, frames)`` as an image with a time axis in seconds (from the MelSpec's hop)."""
    m = (
        mel.detach().float().cpu().numpy()
        if isinstance(mel, torch.Tensor)
        else np.asarray(mel, dtype=np.float32)
    )
    seconds = m.shape[-1] * mel_spec.frame_seconds
    fig = Figure(figsize=(max(4.0, min(14.0, 2.0 + 3.0 * seconds)), 3.2), layout="constrained")
    ax = fig.add_subplot()
    floor = math.log(mel_spec.log_floor)
    im = ax.imshow(
        m, origin="lower", aspect="auto", extent=(0.0, seconds, 0, m.shape[0]), vmin=floor, cmap="magma"
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title[:90], fontsize=9)
    fig.colorbar(im, ax=ax, label="ln |mel|")
    return _save(fig, path)


def plot_compute_vs_quality(path: str | os.PathLike, report: Mapping[str, Any]) -> Path:
    """One panel per metric: the metric against NFE (log axis), a line per sampler, and the
    vocoder-only reference (the reference mel vocoded) as a dashed line."""
    metrics: Sequence[str] = report["metrics"]
    lower = report.get("lower_is_better", {})
    n = len(metrics)
    fig = Figure(figsize=(4.2 * n, 3.6), layout="constrained")
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    for ax, metric in zip(axes, metrics):
        for name, rows in report["samplers"].items():
            pts = [
                (r["nfe"], r["metrics"][metric])
                for r in rows
                if np.isfinite(r["metrics"].get(metric, np.nan))
            ]
            if pts:
                x, y = zip(*sorted(pts))
                ax.plot(x, y, marker="o", label=name)
        ceiling = report.get("vocoded_reference", {}).get(metric)
        if ceiling is not None and np.isfinite(ceiling):
            ax.axhline(ceiling, color="k", linestyle="--", linewidth=1, label="reference mel, vocoded")
        ax.set_xscale("log")
        ticks = sorted({r["nfe"] for rows in report["samplers"].values() for r in rows})
        if ticks:
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        ax.set_xlabel("NFE (model evaluations)")
        better = "lower" if lower.get(metric, True) else "higher"
        ax.set_title(f"{metric} ({better} is better)", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"compute vs quality ({report.get('kind', '')}, {report.get('n_prompts', '?')} held-out prompts)"
    )
    return _save(fig, path)


def plot_spectral_bands(path: str | os.PathLike, report: Mapping[str, Any]) -> Path:
    """Panels: (1) each band's x0-prediction error vs the final sample along the trajectory (relative to
    its first step); (2) the same vs the reference mel when durations were exact; (3) the training loss
    per band against log-SNR."""
    traj = report["trajectory"]
    bands = report["bands"]
    labels = [f"{b['fmin_hz']:.0f}-{b['fmax_hz']:.0f} Hz" for b in bands]
    cmap = _band_colors(len(bands))
    has_ref = traj.get("error_vs_reference") is not None
    n = 3 if has_ref else 2
    fig = Figure(figsize=(4.6 * n, 3.8), layout="constrained")
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    t = np.asarray(traj["t"])
    rel = np.asarray(traj["relative_error_vs_final"])  # (steps, bands)
    for k in range(len(bands)):
        axes[0].plot(t, rel[:, k], color=cmap[k], label=labels[k])
    axes[0].set_xlabel("t of the x0 prediction (1 = noise)")
    axes[0].set_ylabel("band error / error at first step")
    axes[0].set_title("x0 prediction vs final sample", fontsize=9)
    axes[0].invert_xaxis()
    col = 1
    if has_ref:
        ref = np.asarray(traj["error_vs_reference"])
        for k in range(len(bands)):
            axes[1].plot(t, ref[:, k], color=cmap[k])
        axes[1].set_xlabel("t of the x0 prediction")
        axes[1].set_ylabel("mean |log-mel error| vs reference")
        axes[1].set_title("x0 prediction vs reference mel (exact durations)", fontsize=9)
        axes[1].invert_xaxis()
        col = 2
    loss = report["loss_by_noise_level"]
    lam = np.asarray(loss["log_snr"])
    per_band = np.asarray(loss["x0_mse"])  # (n_t, bands)
    for k in range(len(bands)):
        axes[col].plot(lam, per_band[:, k], color=cmap[k])
    axes[col].set_yscale("log")
    axes[col].set_xlabel("log-SNR (noise level; left = noisier)")
    axes[col].set_ylabel("x0-space MSE (normalized mel)")
    axes[col].set_title("training objective per band on held-out mels", fontsize=9)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    return _save(fig, path)


def _band_colors(n: int) -> list:
    from matplotlib import colormaps

    cm = colormaps["viridis"]
    return [cm(i / max(1, n - 1)) for i in range(n)]
