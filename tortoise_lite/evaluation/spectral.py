"""Spectral-band analysis of a text-to-mel diffusion model.

Two views of "which frequencies are decided when":

1. **Along the sampling trajectory.** At every step ``i`` a sampler uses the model's clean estimate
   ``D_i = x0_hat(x_{t_i}, t_i)``. Its per-band error against the final sample (and against the reference
   mel when the model was given the reference's exact durations, so frames line up) shows when each band
   settles. Coarse structure (low mel bands, high energy) is expected to settle first.
2. **The training objective by noise level.** On held-out reference mels, the objective's loss is
   measured at a grid of ``t`` with fixed noise, per mel bin (raw-output MSE times the objective's
   weight, i.e. what training minimizes), and as x0-space MSE (comparable across parameterizations).

Bands are contiguous groups of mel bins; their edges in Hz come from the MelSpec's mel scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.evaluation.references import Reference

#: a band has "settled" once its error vs the final sample is below this share of its first-step error
SETTLE_FRACTION = 0.1


def band_edges(mel_spec: MelSpec, n_bands: int) -> list[dict[str, Any]]:
    """Split the ``n_mels`` bins into ``n_bands`` contiguous bands: ``[{bins: [lo, hi), fmin_hz, fmax_hz}]``.

    Bin ``k``'s triangle spans mel points ``k`` to ``k + 2`` of ``n_mels + 2`` points evenly spaced on the
    MelSpec's mel scale between fmin and fmax.
    """
    import librosa

    n_mels = mel_spec.n_mels
    if not 1 <= n_bands <= n_mels:
        raise ValueError(f"n_bands must be in [1, n_mels={n_mels}], got {n_bands}")
    fmax = mel_spec.fmax if mel_spec.fmax is not None else mel_spec.sample_rate / 2
    pts = librosa.mel_frequencies(n_mels + 2, fmin=mel_spec.fmin, fmax=fmax, htk=mel_spec.scale == "htk")
    cuts = np.linspace(0, n_mels, n_bands + 1).round().astype(int)
    return [
        {"bins": [int(lo), int(hi)], "fmin_hz": float(pts[lo]), "fmax_hz": float(pts[hi + 1])}
        for lo, hi in zip(cuts[:-1], cuts[1:])
    ]


def _per_bin_abs(a: Tensor, b: Tensor, lengths: Sequence[int]) -> Tensor:
    """Mean |a - b| per mel bin over the real frames of every item: a, b (B, n_mels, T) -> (n_mels,)."""
    total = torch.zeros(a.shape[1], dtype=torch.float64)
    count = 0
    for i, n in enumerate(lengths):
        total += (a[i, :, :n] - b[i, :, :n]).abs().sum(-1).double()
        count += int(n)
    return total / max(count, 1)


def _to_bands(per_bin: np.ndarray, bands: list[dict[str, Any]]) -> np.ndarray:
    """(..., n_mels) -> (..., n_bands) means over each band's bins."""
    return np.stack([per_bin[..., b["bins"][0] : b["bins"][1]].mean(-1) for b in bands], axis=-1)


@torch.no_grad()
def trajectory_band_errors(
    tts: Any,
    refs: Sequence[Reference],
    sampler: Any = None,
    steps: int | None = None,
    seed: int = 0,
    n_bands: int = 8,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Per-band error of every step's x0 prediction against the final sample (and the reference).

    Uses the references' exact durations when all have them (then ``error_vs_reference`` is filled).
    Errors are mean |log-mel difference| (natural log, raw mel space) over real frames of all items.
    Returns ``{"t": [steps], "sampler", "steps", "nfe", "error_vs_final": (steps, bands),
    "relative_error_vs_final", "error_vs_reference": (steps, bands) | None, "settle_t": [bands]}``.
    """
    model = tts.model
    exact = all(r.durations is not None for r in refs)
    durations = [r.durations for r in refs] if exact else None
    chunks: list[tuple[int, list[Tensor], Tensor]] = []

    def keep(wrapper: Any, start: int, stop: int) -> None:
        chunks.append((start, list(wrapper.x0_preds), wrapper.final))

    mels, wrapper = tts.generate_mels(
        [r.text for r in refs], sampler=sampler, steps=steps, seed=seed, batch_size=batch_size,
        durations=durations, recorder=keep, record_x0=True,
    )  # fmt: skip
    bands = band_edges(tts.mel_spec, n_bands)
    n_steps = len(chunks[0][1])
    vs_final = np.zeros((n_steps, tts.mel_spec.n_mels))
    vs_ref = np.zeros((n_steps, tts.mel_spec.n_mels)) if exact else None
    stats = model.stats
    for start, preds, final in chunks:
        lengths = [mels[start + i].shape[-1] for i in range(final.shape[0])]
        final_mel = stats.denormalize(final)
        ref_mel = None
        if exact:
            ref_mel = torch.zeros_like(final_mel)
            for i, n in enumerate(lengths):
                ref_mel[i, :, :n] = refs[start + i].mel[:, :n]
        weight = sum(lengths)
        for k, d in enumerate(preds):
            d_mel = stats.denormalize(d)
            vs_final[k] += weight * _per_bin_abs(d_mel, final_mel, lengths).numpy()
            if vs_ref is not None:
                vs_ref[k] += weight * _per_bin_abs(d_mel, ref_mel, lengths).numpy()
    total = sum(m.shape[-1] for m in mels)
    vs_final /= total
    band_final = _to_bands(vs_final, bands)
    first = np.maximum(band_final[:1], 1e-12)
    relative = band_final / first
    ts = [float(t) for t in wrapper.ts[:n_steps]]
    settle = []
    for b in range(len(bands)):
        below = np.nonzero(relative[:, b] <= SETTLE_FRACTION)[0]
        settle.append(ts[int(below[0])] if below.size else 0.0)
    out = {
        "sampler": wrapper.name,
        "steps": int(steps or wrapper.steps),
        "nfe": int(wrapper.nfe),
        "t": ts,
        "exact_durations": exact,
        "error_vs_final": band_final.tolist(),
        "relative_error_vs_final": relative.tolist(),
        "error_vs_final_per_bin": vs_final.tolist(),
        "error_vs_reference": None,
        "settle_fraction": SETTLE_FRACTION,
        "settle_t": settle,
    }
    if vs_ref is not None:
        vs_ref /= total
        out["error_vs_reference"] = _to_bands(vs_ref, bands).tolist()
        out["error_vs_reference_per_bin"] = vs_ref.tolist()
    return out


class _Captured(Exception):
    """Raised by :class:`_CaptureObjective` to stop ``TextToMel.loss`` once its inputs are known."""


class _CaptureObjective:
    """Takes the objective's place for one ``TextToMel.loss(batch)`` call and records the denoiser
    closure (conditioning bound exactly as in training), the normalized ``x0`` and the mask it is given."""

    def __init__(self) -> None:
        self.inputs: dict[str, Any] = {}

    def loss(self, denoise_fn, x0, mask=None, **_):
        self.inputs = {"denoise_fn": denoise_fn, "x0": x0, "mask": mask}
        raise _Captured


def diffusion_inputs(model: Any, batch: Any) -> tuple[Any, Tensor, Tensor]:
    """``(denoise_fn, x0 (B, n_mels, T) normalized, mask (B, 1, T))`` as ``TextToMel.loss`` builds them
    for ``batch``: text encoding, durations (exact or aligned), prior, conditioning; the model stays as is."""
    real = model.objective
    probe = _CaptureObjective()
    model.objective = probe
    try:
        model.loss(batch)
    except _Captured:
        pass
    finally:
        model.objective = real
    if not probe.inputs:
        raise RuntimeError("TextToMel.loss did not call its objective; cannot measure the loss per band")
    return probe.inputs["denoise_fn"], probe.inputs["x0"], probe.inputs["mask"]


def reference_batch(refs: Sequence[Reference], tokenizer: Any, mel_spec: MelSpec) -> Any:
    """A :class:`~tortoise_lite.data.batch.Batch` of the references (raw mels, tokens, exact durations)."""
    from tortoise_lite.data.dataset import MelCollate

    items = []
    for k, r in enumerate(refs):
        items.append(
            {
                "id": f"heldout{k:03d}",
                "text": r.text,
                "mel": r.mel.float(),
                "tokens": torch.tensor(tokenizer.encode(r.text), dtype=torch.long),
                "durations": torch.tensor(r.durations, dtype=torch.long) if r.durations is not None else None,
                "speaker": None,
            }
        )
    return MelCollate(log_floor=mel_spec.log_floor)(items)


@torch.no_grad()
def loss_by_noise_level(
    model: Any,
    refs: Sequence[Reference],
    n_t: int = 12,
    noise_draws: int = 2,
    n_bands: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """The objective's loss per mel band at ``n_t`` noise levels on the references (fixed noise).

    ``t`` takes the midpoints of ``n_t`` equal bins of ``[t_min, t_max]`` (training draws t uniformly).
    Returns ``{"t", "log_snr", "weight", "loss": (n_t, bands) weighted raw MSE, "x0_mse": (n_t, bands),
    "loss_per_bin", "x0_mse_per_bin"}``.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        batch = reference_batch(refs, model.tokenizer, model.mel_spec).to(device)
        denoise_fn, x0, mask = diffusion_inputs(model, batch)
    finally:
        model.train(was_training)
    objective = model.objective
    schedule = objective.schedule
    lo, hi = float(schedule.t_min), float(schedule.t_max)
    ts = lo + (torch.arange(n_t, dtype=torch.float64) + 0.5) * (hi - lo) / n_t
    m = mask.to(x0.dtype).expand_as(x0)  # (B, n_mels, T)
    frames = m.sum(dim=(0, 2)).clamp_min(1.0)  # (n_mels,)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    noises = [torch.randn(x0.shape, generator=gen).to(device) for _ in range(noise_draws)]
    loss = np.zeros((n_t, x0.shape[1]))
    x0_mse = np.zeros((n_t, x0.shape[1]))
    weights = []
    for i, t in enumerate(ts):
        tb = torch.full((x0.shape[0],), float(t), dtype=torch.float64, device=device)
        w = objective.loss_weight(tb)
        weights.append(float(w[0]))
        for noise in noises:
            x_t = schedule.add_noise(x0, noise, tb)
            raw = denoise_fn(objective.net_input(x_t, tb), tb.to(torch.float32))
            target = objective.target(x0, noise, tb)
            se = ((raw.float() - target.float()) ** 2 * m).sum(dim=(0, 2)) / frames
            loss[i] += (se.double() * float(w[0])).cpu().numpy() / noise_draws
            x0_hat = objective.to_x0(raw, x_t, tb)
            e0 = ((x0_hat.float() - x0.float()) ** 2 * m).sum(dim=(0, 2)) / frames
            x0_mse[i] += e0.double().cpu().numpy() / noise_draws
    bands = band_edges(model.mel_spec, n_bands)
    log_snr = schedule.log_snr(ts)
    return {
        "t": ts.tolist(),
        "log_snr": [float(v) if math.isfinite(float(v)) else None for v in log_snr],
        "weight": weights,
        "loss": _to_bands(loss, bands).tolist(),
        "x0_mse": _to_bands(x0_mse, bands).tolist(),
        "loss_per_bin": loss.tolist(),
        "x0_mse_per_bin": x0_mse.tolist(),
        "noise_draws": noise_draws,
        "n_items": len(refs),
    }


def spectral_bands_report(
    tts: Any,
    refs: Sequence[Reference],
    sampler: Any = None,
    steps: int | None = None,
    seed: int = 0,
    n_bands: int = 8,
    n_t: int = 12,
    noise_draws: int = 2,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Both analyses in one JSON-able dict (see the module doc); ``bands`` gives each band's bins and Hz."""
    traj = trajectory_band_errors(tts, refs, sampler, steps, seed, n_bands, batch_size)
    with_durations = [r for r in refs if r.durations is not None]
    loss = loss_by_noise_level(tts.model, with_durations or list(refs), n_t, noise_draws, n_bands, seed)
    settle = traj["settle_t"]
    # settle_t is a noise level: a band that settles earlier in sampling settles at a larger t
    order_agreement = float(
        np.mean([settle[a] >= settle[b] for a in range(len(settle)) for b in range(a + 1, len(settle))])
    ) if len(settle) > 1 else math.nan  # fmt: skip
    return {
        "bands": band_edges(tts.mel_spec, n_bands),
        "trajectory": traj,
        "loss_by_noise_level": loss,
        "low_bands_settle_first_fraction": order_agreement,
    }
