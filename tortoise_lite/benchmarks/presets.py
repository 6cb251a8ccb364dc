"""``python -m tortoise_lite.bench presets --ckpt PATH``: what the reading presets are chosen from.

Four sections, on the checkpoint's held-out prompts (never trained on) and its vocoder:

* **table**: quality against compute for sampler x steps x guidance settings: word error rate of the
  offline recognizer (:mod:`tortoise_lite.evaluation.intelligibility`, pooled over prompts), MCD-DTW
  against the eSpeak reference, NFE, and wall seconds (acoustic + vocoder) per second of audio. The
  ceiling (the references through the same mel and vocoder) is printed first.
* **candidates**: K = 1, 2, 4, 8 takes per prompt (seeds of the reading's schedule), the recognizer's best
  kept: WER of the kept takes (the selection metric itself, so an upper bound of the gain) and MCD-DTW
  (a metric the selection does not see), and the cost.
* **stream**: time to first audio of a 10-sentence paragraph read with ``tts.stream`` against the time of the
  whole paragraph.
* **longform**: a chapter of ``--chapter-chars`` characters (and a quarter of it) read with the ``fast``
  preset: wall time, RTF, peak memory, seconds per 1,000 characters (linear in length if both agree).

Figures are printed and written to ``--out/presets.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: (sampler, steps, guidance) settings of the table
SETTINGS = (
    ("dpmpp_2m", 2, 1.0),
    ("dpmpp_2m", 4, 1.0),
    ("dpmpp_2m", 6, 1.0),
    ("dpmpp_2m", 10, 1.0),
    ("dpmpp_2m", 16, 1.0),
    ("dpmpp_2m", 25, 1.0),
    ("dpmpp_3m", 10, 1.0),
    ("dpmpp_3m", 16, 1.0),
    ("dpmpp_2m_sde", 25, 1.0),
    ("dpmpp_2m", 10, 1.5),
    ("dpmpp_2m", 10, 2.0),
)
KS = (1, 2, 4, 8)
SECTIONS = ("table", "candidates", "stream", "longform")
NO_CKPT = (
    "no --ckpt given: train the default speech model first (python -m tortoise_lite.train +recipe=speech), "
    "then: python -m tortoise_lite.bench presets --ckpt outputs/speech/checkpoints/last.ckpt"
)


def _log(msg: str) -> None:
    print(msg, flush=True)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _mcd(mel_spec: Any, refs: list[Any], wavs: list[np.ndarray]) -> float:
    from tortoise_lite.audio.metrics import mcd_dtw

    return float(np.mean([mcd_dtw(mel_spec, r.wav, np.asarray(w, np.float32)) for r, w in zip(refs, wavs)]))


def _generate(tts: Any, texts: list[str], sampler: str, steps: int, guidance: float, seeds: list[int],
              batch_size: int, device: str) -> tuple[list[np.ndarray], float, int]:  # fmt: skip
    _sync(device)
    t0 = time.perf_counter()
    mels, rec = tts.generate_mels(texts, sampler=sampler, steps=steps, guidance=guidance, seed=seeds,
                                  batch_size=batch_size)  # fmt: skip
    wavs = [np.clip(w.numpy(), -1, 1).astype(np.float32) for w in tts.vocode(mels)]
    _sync(device)
    return wavs, time.perf_counter() - t0, int(rec.nfe)


def table(tts: Any, refs: list[Any], recognizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    from tortoise_lite.evaluation.intelligibility import intelligibility
    from tortoise_lite.reading import segment_seed

    sr = tts.sample_rate
    texts = [r.text for r in refs]
    ref_wavs = [w.numpy() for w in tts.vocode([r.mel for r in refs])]
    ceiling = {
        "wer": intelligibility(recognizer, ref_wavs, texts, sr).wer,
        "mcd_dtw_db": _mcd(tts.mel_spec, refs, ref_wavs),
    }
    raw = {"wer": intelligibility(recognizer, [r.wav for r in refs], texts, sr).wer}
    _log(f"eSpeak references: WER {raw['wer']:.3f}; through the mel + vocoder (ceiling): WER {ceiling['wer']:.3f}, "
         f"MCD {ceiling['mcd_dtw_db']:.2f} dB")  # fmt: skip
    seeds = [segment_seed(args.seed, i) for i in range(len(refs))]
    _generate(tts, texts[:2], "dpmpp_2m", 2, 1.0, seeds[:2], args.batch_size, args.device)  # warm-up
    rows = []
    _log(f"{'sampler':<14}{'steps':>6}{'guid':>6}{'NFE':>5}{'WER':>8}{'MCD dB':>8}{'s/prompt':>10}{'RTF':>8}")
    for sampler, steps, guidance in SETTINGS:
        wavs, secs, nfe = _generate(tts, texts, sampler, steps, guidance, seeds, args.batch_size, args.device)
        audio = sum(w.size for w in wavs) / sr
        t1 = time.perf_counter()
        wer = intelligibility(recognizer, wavs, texts, sr).wer
        rec_secs = time.perf_counter() - t1
        row = {"sampler": sampler, "steps": steps, "guidance": guidance, "nfe": nfe, "wer": wer,
               "mcd_dtw_db": _mcd(tts.mel_spec, refs, wavs), "seconds": secs, "seconds_per_prompt": secs / len(refs),
               "rtf": secs / audio, "audio_seconds": audio, "recognizer_seconds": rec_secs}  # fmt: skip
        rows.append(row)
        _log(f"{sampler:<14}{steps:>6}{guidance:>6.1f}{nfe:>5}{wer:>8.3f}{row['mcd_dtw_db']:>8.2f}"
             f"{row['seconds_per_prompt']:>10.3f}{row['rtf']:>8.3f}")  # fmt: skip
    return {"ceiling": ceiling, "espeak": raw, "rows": rows}


def candidates(tts: Any, refs: list[Any], recognizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    from tortoise_lite.evaluation.intelligibility import word_error_rate
    from tortoise_lite.reading import segment_seed
    from tortoise_lite.reading.reader import load_preset

    fast = load_preset("fast")
    sr, kmax = tts.sample_rate, max(KS)
    texts = [r.text for r in refs for _ in range(kmax)]
    seeds = [segment_seed(args.seed, i, 0, k) for i in range(len(refs)) for k in range(kmax)]
    wavs, secs, nfe = _generate(tts, texts, fast["sampler"], fast["steps"], fast["guidance"], seeds,
                                args.batch_size, args.device)  # fmt: skip
    t0 = time.perf_counter()
    errors = np.array([word_error_rate(t, recognizer.transcribe(w, sr)) for t, w in zip(texts, wavs)])
    score_secs = time.perf_counter() - t0
    errors = errors.reshape(len(refs), kmax)
    n_words = np.array([len(r.text.split()) for r in refs], dtype=np.float64)
    from tortoise_lite.audio.metrics import mcd_dtw

    mcds = np.array([mcd_dtw(tts.mel_spec, refs[i // kmax].wav, w) for i, w in enumerate(wavs)]).reshape(
        len(refs), kmax
    )
    rows = []
    _log(
        f"candidates ({fast['sampler']} {fast['steps']} steps): {'K':>3}{'WER':>8}{'MCD dB':>8}{'s/prompt':>10}"
    )
    for K in KS:
        best = np.argmin(errors[:, :K], axis=1)  # first minimum: ties keep the earliest take
        kept = errors[np.arange(len(refs)), best]
        wer = float((kept * n_words).sum() / n_words.sum())
        mcd = float(mcds[np.arange(len(refs)), best].mean())
        per_prompt = K * (secs + score_secs) / (kmax * len(refs))
        rows.append({"K": K, "wer": wer, "mcd_dtw_db": mcd, "seconds_per_prompt": per_prompt})
        _log(f"{'':<38}{K:>3}{wer:>8.3f}{mcd:>8.2f}{per_prompt:>10.3f}")
    return {"sampler": fast["sampler"], "steps": fast["steps"], "nfe": nfe, "rows": rows,
            "generate_seconds": secs, "score_seconds": score_secs}  # fmt: skip


def _paragraph(n: int, seed: int) -> str:
    from tortoise_lite.data.corpora.synthetic_speech import make_prompt

    rng = random.Random(seed)
    out = []
    while len(out) < n:
        p = make_prompt(rng)
        if not p[0].isdigit():  # sentences, not digit strings
            out.append(p)
    return " ".join(out)


def stream(tts: Any, args: argparse.Namespace) -> dict[str, Any]:
    text = _paragraph(10, args.seed + 1)
    kw = {"preset": "fast", "seed": args.seed, "batch_size": args.batch_size}
    list(tts.stream(_paragraph(2, 99), **kw))  # warm-up
    t0 = time.perf_counter()
    first, n, audio = None, 0, 0
    for chunk in tts.stream(text, **kw):
        first = first if first is not None else time.perf_counter() - t0
        n += 1
        audio += chunk.wav.size
    total = time.perf_counter() - t0
    audio_s = audio / tts.sample_rate
    _log(f"stream: 10 sentences ({len(text)} characters, {n} segments, {audio_s:.1f} s of audio): first audio after "
         f"{first:.2f} s, whole paragraph {total:.2f} s ({first / total:.1%})")  # fmt: skip
    return {"sentences": 10, "segments": n, "characters": len(text), "first_audio_seconds": first,
            "total_seconds": total, "audio_seconds": audio_s}  # fmt: skip


def longform(tts: Any, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    rows = []
    for chars in (args.chapter_chars // 4, args.chapter_chars):
        paras, text = [], ""
        k = 0
        while len(text) < chars:
            paras.append(_paragraph(6, args.seed + 100 + k))
            text = "\n\n".join(paras)
            k += 1
        text = text[:chars].rsplit(" ", 1)[0].rstrip(",") + "."
        from tortoise_lite.reading import Reader

        ready: list[float] = []
        reader = Reader(tts, preset="fast", seed=args.seed, batch_size=args.batch_size)
        res = reader.read(
            text, out_dir=out / f"chapter_{chars}", on_chunk=lambda c, r=ready: r.append(c.ready_seconds)
        )
        # seconds spent on each quarter of the segments: equal quarters = time linear in length within the run
        q = [ready[min(len(ready) - 1, (len(ready) * (i + 1)) // 4 - 1)] for i in range(4)]
        quarters = [round(b - a, 2) for a, b in zip([0.0, *q[:-1]], q)]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = {"characters": len(text), "segments": len(res.segments), "wall_seconds": res.wall_seconds,
               "audio_seconds": res.audio_seconds, "rtf": res.rtf, "seconds_per_1000_chars": 1000 * res.wall_seconds / len(text),
               "peak_rss_mb": rss, "seconds_per_quarter": quarters}  # fmt: skip
        rows.append(row)
        _log(f"longform: {row['characters']} characters, {row['segments']} segments -> {row['audio_seconds']:.0f} s "
             f"of audio in {row['wall_seconds']:.1f} s (RTF {row['rtf']:.3f}, {row['seconds_per_1000_chars']:.2f} s per "
             f"1,000 characters, peak RSS {rss:.0f} MB; seconds per quarter of the segments {quarters})")  # fmt: skip
    return {"rows": rows}


def suggest(
    report: dict[str, Any], fast_tol: float = 0.05, ultra_tol: float = 0.15, k_tol: float = 0.03
) -> dict[str, dict[str, Any]]:
    """The preset rule applied to the measured table (ties: lower MCD, then fewer seconds); each preset
    costs more than the one before:

    * ultra_fast: the cheapest setting whose WER is within ``ultra_tol`` of the best single-take WER;
    * fast: the cheapest setting with more NFE than ultra_fast whose WER is within ``fast_tol``;
    * standard: the best (WER, then MCD) setting costing at most twice fast's seconds, with K = 2 when two
      candidates lower the WER by 0.02 or more;
    * high_quality: the best setting of the table, with the smallest K whose WER is within ``k_tol`` (the
      measurement's noise: the same takes in other batches move the WER by about that) of K = 8's.
    """
    rows = report["table"]["rows"]
    best = min(r["wer"] for r in rows)

    def cheapest(tol: float, above_nfe: int = 0) -> dict[str, Any]:
        ok = [r for r in rows if r["wer"] <= best + tol and r["nfe"] > above_nfe] or rows
        return min(ok, key=lambda r: (r["nfe"], r["seconds_per_prompt"], r["mcd_dtw_db"]))

    def quality(r: dict[str, Any]) -> tuple[float, float, float]:
        return (round(r["wer"], 3), round(r["mcd_dtw_db"], 2), r["seconds_per_prompt"])

    ultra = cheapest(ultra_tol)
    fast = cheapest(fast_tol, above_nfe=ultra["nfe"])
    standard = min(
        (r for r in rows if r["seconds_per_prompt"] <= 2 * fast["seconds_per_prompt"]), key=quality
    )
    top = min(rows, key=quality)
    ks = {c["K"]: c["wer"] for c in report.get("candidates", {}).get("rows", [])}
    k_std, k_hq = 1, 1
    if ks:
        k_std = 2 if ks[1] - ks.get(2, ks[1]) >= 0.02 else 1
        k_hq = min(k for k, w in ks.items() if w <= ks[max(ks)] + k_tol)

    def pick(r: dict[str, Any], k: int) -> dict[str, Any]:
        return {"sampler": r["sampler"], "steps": r["steps"], "guidance": r["guidance"], "candidates": k,
                "nfe": r["nfe"], "wer": r["wer"], "mcd_dtw_db": r["mcd_dtw_db"]}  # fmt: skip

    return {"ultra_fast": pick(ultra, 1), "fast": pick(fast, 1), "standard": pick(standard, k_std),
            "high_quality": pick(top, k_hq)}  # fmt: skip


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tortoise_lite.bench presets", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--ckpt", help="text-to-mel checkpoint (the default speech run)")
    ap.add_argument("--vocoder-ckpt", help="a trained vocoder (default: Griffin-Lim)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=20, help="held-out prompts (at most the checkpoint's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    ap.add_argument("--chapter-chars", type=int, default=10_000, help="longform: characters of the chapter")
    ap.add_argument("--out", default="bench_out/presets", help="folder for presets.json and the chapter wavs")
    args = ap.parse_args(argv)
    if not args.ckpt:
        print(NO_CKPT)
        return 2
    sections = [s for s in args.sections.split(",") if s]
    bad = sorted(set(sections) - set(SECTIONS))
    if bad:
        print(f"error: unknown section(s) {bad}; choose from {SECTIONS}")
        return 2
    torch.set_num_threads(args.threads)
    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.evaluation.cli import write_json
    from tortoise_lite.evaluation.intelligibility import Recognizer
    from tortoise_lite.evaluation.references import build_references, heldout_prompts

    model, info = load_checkpoint(args.ckpt, device=args.device)
    tts = TextToSpeech(model, vocoder=args.vocoder_ckpt or "griffin_lim", device=args.device, info=info)
    out = Path(args.out)
    report: dict[str, Any] = {"checkpoint": str(args.ckpt), "global_step": info.global_step, "threads": args.threads,
                              "device": args.device, "vocoder": type(tts.vocoder).__name__}  # fmt: skip
    if {"table", "candidates"} & set(sections):
        kind, prompts, settings = heldout_prompts(info.config, tts.mel_spec)
        prompts = prompts[: args.prompts]
        refs = build_references(kind, prompts, tts.mel_spec, tts.tokenizer, settings)
        recognizer = Recognizer.for_texts(prompts)
        report["prompts"] = prompts
        _log(f"{len(prompts)} held-out prompts of {kind}; recognizer vocabulary {len(recognizer.vocabulary)} words; "
             f"vocoder {report['vocoder']}, {args.threads} threads on {args.device}")  # fmt: skip
        if "table" in sections:
            report["table"] = table(tts, refs, recognizer, args)
        if "candidates" in sections:
            report["candidates"] = candidates(tts, refs, recognizer, args)
    if "table" in report:
        report["suggested_presets"] = suggest(report)
        for name, p in report["suggested_presets"].items():
            _log(f"suggested {name:<13} sampler={p['sampler']} steps={p['steps']} guidance={p['guidance']:g} "
                 f"candidates={p['candidates']}  (table: NFE {p['nfe']}, WER {p['wer']:.3f}, MCD {p['mcd_dtw_db']:.2f} dB)")  # fmt: skip
    if "stream" in sections:
        report["stream"] = stream(tts, args)
    if "longform" in sections:
        report["longform"] = longform(tts, args, out)
    _log(f"wrote {write_json(out / 'presets.json', report)}")
    return 0
