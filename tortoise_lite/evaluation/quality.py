"""Objective quality of generated audio against the references, and its dependence on compute (NFE).

Metrics (shared implementations in :mod:`tortoise_lite.audio.metrics`):

* tones: ``pitch_accuracy`` (share of notes within 50 cents, pyin), ``pitch_error_cents`` (mean |error|
  over voiced notes) and ``mel_l1`` (mean |log-mel difference| against the reference mel; frame-aligned
  because tones are generated with the reference's exact durations);
* speech: ``wer`` / ``cer`` (word / character error rate of the offline recognizer against the prompt,
  :mod:`~tortoise_lite.evaluation.intelligibility`), ``mcd_dtw_db`` (mel-cepstral distortion after DTW),
  ``log_f0_rmse_cents`` and ``vuv_error`` (voiced/unvoiced disagreement) against the eSpeak reference.

The compute-vs-quality report evaluates every sampler at several NFE budgets on the same prompts and
seed, plus the reference mel passed through the same vocoder (the best any acoustic model can reach
with that vocoder).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tortoise_lite.evaluation.references import Reference

METRICS: dict[str, tuple[str, ...]] = {
    "tones": ("pitch_accuracy", "pitch_error_cents", "mel_l1"),
    "synthetic_speech": ("wer", "cer", "mcd_dtw_db", "log_f0_rmse_cents", "vuv_error"),
    "synthetic_voices": ("wer", "cer", "mcd_dtw_db", "log_f0_rmse_cents", "vuv_error"),
}
LOWER_IS_BETTER: dict[str, bool] = {
    "pitch_accuracy": False,
    "pitch_error_cents": True,
    "mel_l1": True,
    "mcd_dtw_db": True,
    "log_f0_rmse_cents": True,
    "vuv_error": True,
    "wer": True,
    "cer": True,
}
#: model evaluations per grid interval for samplers that evaluate more than once per step
_NFE_PER_STEP = {"heun": 2, "flow_midpoint": 2}


def item_metrics(
    kind: str,
    mel_spec: Any,
    ref: Reference,
    wav: torch.Tensor | np.ndarray,
    mel: torch.Tensor | None = None,
    recognizer: Any = None,
) -> dict[str, float]:
    """Metrics of one generated item (``wav`` (S,), its log-mel ``mel`` (n_mels, T)) against ``ref``.

    ``recognizer``: a :class:`~tortoise_lite.evaluation.intelligibility.Recognizer` for ``wer``/``cer``
    (speech; NaN without one)."""
    from tortoise_lite.audio.metrics import f0_metrics, mcd_dtw, note_pitch_accuracy

    wav = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    if kind == "tones":
        if not ref.notes:
            return {"pitch_accuracy": math.nan, "pitch_error_cents": math.nan, "mel_l1": math.nan}
        acc, errors = note_pitch_accuracy(mel_spec, wav, ref.notes)
        voiced = [abs(e) for e in errors if not math.isnan(e)]
        out = {
            "pitch_accuracy": float(acc),
            "pitch_error_cents": float(np.mean(voiced)) if voiced else math.nan,
        }
        out["mel_l1"] = math.nan
        if mel is not None and mel.shape[-1] == ref.mel.shape[-1]:
            out["mel_l1"] = float((mel.float().cpu() - ref.mel.float()).abs().mean())
        return out
    if kind in ("synthetic_speech", "synthetic_voices"):
        from tortoise_lite.evaluation.intelligibility import char_error_rate, word_error_rate

        f0 = f0_metrics(mel_spec, ref.wav, wav)
        out = {"wer": math.nan, "cer": math.nan}
        if recognizer is not None:
            heard = recognizer.transcribe(wav, mel_spec.sample_rate)
            out = {"wer": word_error_rate(ref.text, heard), "cer": char_error_rate(ref.text, heard)}
        return {
            **out,
            "mcd_dtw_db": float(mcd_dtw(mel_spec, ref.wav, wav)),
            "log_f0_rmse_cents": float(f0.log_f0_rmse_cents),
            "vuv_error": float(f0.vuv_error),
        }
    raise ValueError(f"no metrics for corpus kind {kind!r}; known: {sorted(METRICS)}")


def mean_metrics(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over items, ignoring NaN (an item without voiced frames); NaN if none."""
    out = {}
    for name in names:
        vals = [float(r[name]) for r in rows if name in r and not math.isnan(float(r[name]))]
        out[name] = float(np.mean(vals)) if vals else math.nan
    return out


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """Grid intervals giving about ``nfe`` model evaluations (heun: 2N - 1, flow_midpoint: 2N)."""
    per = _NFE_PER_STEP.get(sampler, 1)
    if sampler == "heun":
        return max(1, (int(nfe) + 1) // 2)
    return max(1, int(nfe) // per)


def evaluate_setting(
    tts: Any,
    refs: Sequence[Reference],
    kind: str,
    sampler: Any = None,
    steps: int | None = None,
    seed: int = 0,
    guidance: float = 1.0,
    batch_size: int = 8,
    reference_durations: bool | None = None,
    wavs_out: list | None = None,
    recognizer: Any = None,
) -> dict[str, Any]:
    """Generate the references' texts with one sampler setting, vocode, measure.

    ``reference_durations``: generate with the references' exact durations (default: for tones, where
    note boundaries must be known to check pitch; speech uses the model's own duration predictor).
    ``wavs_out``: a list that receives the generated waveforms; ``recognizer``: scores intelligibility
    (speech). Returns ``{"nfe", "steps", "metrics": mean, "per_item": [...], "acoustic_seconds", "vocoder_seconds",
    "audio_seconds"}``.
    """
    use_ref = (kind == "tones") if reference_durations is None else bool(reference_durations)
    durations = None
    if use_ref:
        if any(r.durations is None for r in refs):
            raise ValueError("reference durations requested but some references have none")
        durations = [r.durations for r in refs]
    texts = [r.text for r in refs]
    # a model trained with speakers (tones: timbres) is asked for the reference's one
    known = set(tts.speakers)
    speakers = [r.speaker for r in refs] if known and all(r.speaker in known for r in refs) else None
    t0 = time.perf_counter()
    mels, wrapper = tts.generate_mels(
        texts,
        sampler=sampler,
        steps=steps,
        guidance=guidance,
        seed=seed,
        batch_size=batch_size,
        durations=durations,
        speaker=speakers,
    )
    t1 = time.perf_counter()
    wavs = tts.vocode(mels)
    t2 = time.perf_counter()
    if wavs_out is not None:
        wavs_out.extend(wavs)
    names = METRICS[kind]
    per_item = [item_metrics(kind, tts.mel_spec, r, w, m, recognizer) for r, w, m in zip(refs, wavs, mels)]
    return {
        "sampler": wrapper.name,
        "steps": int(steps or wrapper.steps),
        "nfe": int(wrapper.nfe),
        "metrics": mean_metrics(per_item, names),
        "per_item": [{"text": r.text, **m} for r, m in zip(refs, per_item)],
        "acoustic_seconds": t1 - t0,
        "vocoder_seconds": t2 - t1,
        "audio_seconds": float(sum(int(w.numel()) for w in wavs) / tts.sample_rate),
        "reference_durations": use_ref,
    }


def vocoded_reference(
    tts: Any, refs: Sequence[Reference], kind: str, recognizer: Any = None
) -> dict[str, float]:
    """Metrics of the reference mels passed through the same vocoder: the ceiling of any acoustic model
    with that mel and vocoder (for ``wer``: the recognizer on ground truth through the same pipeline)."""
    wavs = tts.vocode([r.mel for r in refs])
    rows = [item_metrics(kind, tts.mel_spec, r, w, r.mel, recognizer) for r, w in zip(refs, wavs)]
    return mean_metrics(rows, METRICS[kind])


def compute_vs_quality(
    tts: Any,
    refs: Sequence[Reference],
    kind: str,
    samplers: Sequence[str],
    nfes: Sequence[int],
    seed: int = 0,
    guidance: float = 1.0,
    batch_size: int = 8,
    reference_durations: bool | None = None,
    log: Any = None,
    recognizer: Any = None,
) -> dict[str, Any]:
    """Every sampler at every NFE budget (same prompts, same seed): the report behind the figure.

    Returns ``{"kind", "metrics", "lower_is_better", "n_prompts", "seed", "samplers": {name: [rows]},
    "vocoded_reference": {metric: value}}``; each row is :func:`evaluate_setting`'s output with the
    requested ``target_nfe`` (the measured ``nfe`` can differ: heun's 2N - 1).
    """
    report: dict[str, Any] = {
        "kind": kind,
        "metrics": list(METRICS[kind]),
        "lower_is_better": {m: LOWER_IS_BETTER[m] for m in METRICS[kind]},
        "n_prompts": len(refs),
        "seed": seed,
        "guidance": guidance,
        "samplers": {},
        "vocoded_reference": vocoded_reference(tts, refs, kind, recognizer),
    }
    for name in samplers:
        rows, seen = [], set()
        for nfe in nfes:
            steps = steps_for_nfe(name, nfe)
            if steps in seen:
                continue  # e.g. heun at NFE 1 and 2 both mean one interval
            seen.add(steps)
            row = evaluate_setting(
                tts,
                refs,
                kind,
                name,
                steps,
                seed,
                guidance,
                batch_size,
                reference_durations,
                recognizer=recognizer,
            )
            row["target_nfe"] = int(nfe)
            rows.append(row)
            if log is not None:
                shown = ", ".join(f"{k}={v:.3g}" for k, v in row["metrics"].items())
                log(f"  {name:<16} steps={steps:<3} nfe={row['nfe']:<3} {shown}")
        report["samplers"][name] = rows
    return report
