"""Training-quality benchmark: ``python -m tortoise_lite.bench train [--recipes tones,speech] [--out DIR]``.

Trains each recipe with its default budget (``--max-steps`` / extra Hydra overrides shrink it), then
measures on the held-out prompts of its corpus:

* ``tones``: note pitch accuracy = share of notes whose median librosa.pyin F0 (inner 60 % of each note's
  predicted frames, Griffin-Lim audio) is within 50 cents of the written note (target >= 95%).
* ``speech``: mel-cepstral distortion (dB, DTW-aligned, c1..c24 of the generated vs the eSpeak NG log-mel)
  and log-F0 RMSE (cents) / voiced-unvoiced error of the Griffin-Lim rendering against eSpeak's audio.
* ``speech`` also: intelligibility, the word / character error rate of the offline recognizer
  (:mod:`tortoise_lite.evaluation.intelligibility`) next to its ceiling (the eSpeak references through the
  same mel and Griffin-Lim); and with ``--curve`` (default for speech) intelligibility against training
  minutes (every kept checkpoint of the run) and against sampling NFE (the final one):
  ``OUT/<recipe>/quality_vs_compute.json`` and ``.png``.
* both: training throughput in mel frames per second of fit time.

Figures are printed and written to ``OUT/train_bench.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch


def _train(recipe: str, out: Path, extra: list[str]) -> tuple[Path, float, float]:
    """Run the app; returns (last checkpoint, fit seconds, mel frames trained on). The run's start time
    is written to ``out/bench_start.json`` (checkpoint times are measured from it)."""
    from hydra import compose, initialize_config_dir

    from tortoise_lite.paths import config_dir
    from tortoise_lite.training.app import run

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"+recipe={recipe}", f"output_dir={out}", "logger=all", *extra])
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "bench_start.json").exists():  # a resumed run keeps its first start
        (out / "bench_start.json").write_text(json.dumps({"start": time.time()}))
    t0 = time.monotonic()
    result = run(cfg)
    seconds = time.monotonic() - t0
    return result.last_checkpoint, seconds, result.metrics.get("mel_frames_seen", 0.0)


def _generate_with_durations(model, text: str, seed: int = 0, speaker: int | None = None):
    """-> (mel (n_mels, T), frames per token (L,), token ids) with the model's own predicted durations."""
    ids = model.tokenizer.encode(text)
    tokens = torch.tensor([ids], device=model.device)
    h, tmask = model.encode_text(tokens, tokens != 0, [text])
    durations, _ = model.predict_lengths(h, tmask)
    spk = None if speaker is None else torch.tensor([speaker], device=model.device)
    mel, lengths = model.generate(tokens=tokens, durations=durations, seed=seed, speaker=spk)
    return mel[0, :, : int(lengths[0])], durations[0].cpu().numpy(), ids


def eval_tones(ckpt: Path, prompts: list[str]) -> dict:
    """Share of generated notes within 50 cents (pyin) of the written pitch, at the model's own note timing."""
    import librosa

    from tortoise_lite.audio.metrics import note_pitch_accuracy
    from tortoise_lite.checkpoint import load_text_to_mel
    from tortoise_lite.text.tokenizers import note_to_midi
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_text_to_mel(ckpt)
    spec = info.mel_spec
    vocoder = GriffinLim(spec)
    errors: list[float] = []
    for i, text in enumerate(prompts):
        # a timbre-conditioned model plays the prompts on each of its timbres in turn
        speaker = i % model.n_speakers if model.n_speakers else None
        mel, durs, ids = _generate_with_durations(model, text, speaker=speaker)
        wav = vocoder(mel[None])[0].numpy()
        notes, start = [], 0.0
        for sym, d in zip((model.tokenizer.symbols[i] for i in ids), durs):
            end = start + int(d) * spec.frame_seconds
            try:
                midi = note_to_midi(sym)
            except (ValueError, KeyError):
                midi = None  # rests and non-note symbols
            if isinstance(midi, int) and end > start:
                notes.append((start, end, float(librosa.midi_to_hz(midi))))
            start = end
        if notes:
            errors += note_pitch_accuracy(spec, wav, notes)[1]
    hits = sum(1 for e in errors if abs(e) <= 50)
    finite = [abs(e) for e in errors if math.isfinite(e)]
    return {"notes": len(errors), "pitch_accuracy_50c": hits / max(len(errors), 1),
            "median_abs_cents": float(np.median(finite)) if finite else None}  # fmt: skip


def eval_speech(ckpt: Path, prompts: list[str], steps: int | None = None) -> dict:
    """Intelligibility (WER/CER of the offline recognizer, next to its ceiling: the eSpeak references
    through the same mel and Griffin-Lim), MCD-DTW and F0 errors of the Griffin-Lim rendering."""
    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.evaluation.quality import evaluate_setting, vocoded_reference
    from tortoise_lite.evaluation.references import build_references, corpus_recognizer, heldout_prompts

    tts = TextToSpeech.from_checkpoint(str(ckpt))
    kind, _, settings = heldout_prompts(tts.info.config, tts.mel_spec)
    refs = build_references(kind, prompts, tts.mel_spec, tts.tokenizer, settings)
    recognizer = corpus_recognizer(tts.info.config, tts.mel_spec)
    row = evaluate_setting(tts, refs, kind, steps=steps, seed=0, recognizer=recognizer)
    ceiling = vocoded_reference(tts, refs, kind, recognizer)
    m = row["metrics"]
    return {"prompts": len(prompts), "nfe": row["nfe"], "wer": m["wer"], "wer_ceiling": ceiling["wer"],
            "cer": m["cer"], "cer_ceiling": ceiling["cer"], "mcd_db": m["mcd_dtw_db"],
            "log_f0_rmse_cents": m["log_f0_rmse_cents"], "vuv_error": m["vuv_error"],
            "vuv_error_ceiling": ceiling["vuv_error"], "per_item": row["per_item"]}  # fmt: skip


def quality_curve(run_dir: Path, prompts: list[str], nfes: list[int]) -> dict:
    """Intelligibility (WER/CER) of every kept checkpoint of a run against its wall minutes since the run
    started, and of the final checkpoint against sampling NFE (dpmpp_2m). Writes ``quality_vs_compute.json/.png``."""
    import re

    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.evaluation.intelligibility import intelligibility
    from tortoise_lite.evaluation.references import build_references, corpus_recognizer, heldout_prompts

    start = json.loads((run_dir / "bench_start.json").read_text())["start"]
    ckpts = sorted(run_dir.glob("checkpoints/step*.ckpt"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    last = run_dir / "checkpoints" / "last.ckpt"
    rows, refs, recognizer, ceiling = [], None, None, None

    def wer_of(tts, **kw) -> dict:
        t0 = time.perf_counter()
        mels, _ = tts.generate_mels([r.text for r in refs], seed=0, speaker=speaker, **kw)
        rep = intelligibility(recognizer, tts.vocode(mels), [r.text for r in refs], tts.sample_rate)
        return {"wer": rep.wer, "cer": rep.cer, "seconds": time.perf_counter() - t0}

    for ck in [*ckpts, last]:
        tts = TextToSpeech.from_checkpoint(str(ck))
        if refs is None:
            kind, _, settings = heldout_prompts(tts.info.config, tts.mel_spec)
            refs = build_references(kind, prompts, tts.mel_spec, tts.tokenizer, settings)
            recognizer = corpus_recognizer(tts.info.config, tts.mel_spec)
            heard = tts.vocode([r.mel for r in refs])
            ceiling = intelligibility(recognizer, heard, [r.text for r in refs], tts.sample_rate).to_dict()
            ceiling.pop("items")
            speaker = refs[0].speaker if refs[0].speaker in tts.speakers else None
        if rows and rows[-1]["step"] == tts.info.global_step:
            continue  # last.ckpt written at the same step as the final periodic one
        m = wer_of(tts)
        rows.append({"step": tts.info.global_step, "minutes": (ck.stat().st_mtime - start) / 60, **m})
        print(
            f"  step {rows[-1]['step']:>5} at {rows[-1]['minutes']:.1f} min: WER {m['wer']:.3f}", flush=True
        )
    by_nfe = []
    for nfe in nfes:
        m = wer_of(tts, sampler="dpmpp_2m", steps=nfe)
        by_nfe.append({"nfe": nfe, **m})
        print(f"  {nfe:>3} NFE: WER {m['wer']:.3f}", flush=True)
    report = {"prompts": len(prompts), "ceiling": ceiling, "by_training": rows, "by_nfe": by_nfe}
    (run_dir / "quality_vs_compute.json").write_text(json.dumps(report, indent=2))
    _plot_curve(run_dir / "quality_vs_compute.png", report)
    return report


def _plot_curve(path: Path, report: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    t = report["by_training"]
    ax1.plot([r["minutes"] for r in t], [r["wer"] for r in t], marker="o", label="generated (10 NFE)")
    ax1.set_xlabel("training wall minutes (2-core CPU)")
    n = report["by_nfe"]
    ax2.plot([r["nfe"] for r in n], [r["wer"] for r in n], marker="o", label="final model")
    ax2.set_xscale("log")
    ax2.set_xticks([r["nfe"] for r in n], [str(r["nfe"]) for r in n])
    ax2.minorticks_off()
    ax2.set_xlabel("sampling NFE (dpmpp_2m)")
    for ax in (ax1, ax2):
        ax.axhline(report["ceiling"]["wer"], color="k", ls="--", lw=1, label="ceiling (eSpeak, mel + GL)")
        ax.set_ylabel("WER (offline recognizer)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"intelligibility vs compute ({report['prompts']} held-out prompts)")
    fig.savefig(path, dpi=120)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench train", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--recipes", default="tones,speech")
    ap.add_argument("--out", default="outputs/bench_train")
    ap.add_argument("--max-steps", type=int, default=None, help="shrink the default budget (quick checks)")
    ap.add_argument(
        "--prompts", type=int, default=None, help="held-out prompts evaluated per recipe (default: all)"
    )
    ap.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="RECIPE=PATH",
        help="evaluate this finished run's checkpoint instead of training the recipe (e.g. the default run's)",
    )
    ap.add_argument(
        "--curve",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="speech: intelligibility vs training minutes (keeps every checkpoint) and vs NFE",
    )
    ap.add_argument("--curve-nfe", default="2,4,10,25", help="NFE budgets of the curve")
    ap.add_argument("--device", default="cpu", help="cuda: train with trainer=gpu (FLOP/s, MFU, memory)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every recipe")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not any(o.startswith("trainer=") for o in args.overrides):
        args.overrides.append("trainer=gpu")
    given = dict(c.split("=", 1) for c in args.ckpt)
    out = Path(args.out)
    report = {}
    for recipe in [r for r in args.recipes.split(",") if r]:
        extra = list(args.overrides) + (
            [f"trainer.max_steps={args.max_steps}", "samples.enabled=false"] if args.max_steps else []
        )
        run_dir = out / recipe
        curve = args.curve and recipe != "tones"
        if curve and recipe not in given:
            extra.append("checkpoint.save_top_k=-1")  # keep every periodic checkpoint for the curve
        if recipe in given:
            ckpt, seconds, frames = (
                Path(given[recipe]),
                float("nan"),
                float("nan"),
            )  # throughput: see its summary
        else:
            ckpt, seconds, frames = _train(
                recipe, run_dir, extra + (["ckpt_path=last"] if (run_dir / "checkpoints").exists() else [])
            )
        from tortoise_lite.checkpoint import load_text_to_mel

        _, info = load_text_to_mel(ckpt)
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        from tortoise_lite.paths import config_dir
        from tortoise_lite.training.app import _data_config, build_tokenizer

        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=[f"+recipe={recipe}", *args.overrides])
        dm = instantiate(
            _data_config(cfg.data), mel=instantiate(cfg.mel), tokenizer=build_tokenizer(cfg.text)
        )
        prompts = dm.heldout_prompts()[: args.prompts]
        entry = {
            "fit_seconds": seconds,
            "mel_frames_per_s": frames / max(seconds, 1e-9),
            "steps": info.global_step,
        }
        if recipe not in given:  # achieved TFLOP/s and MFU at that rate (tortoise_lite.benchmarks.flops)
            from tortoise_lite.benchmarks.flops import checkpoint_training_report, format_report

            entry["throughput"] = checkpoint_training_report(ckpt, entry["mel_frames_per_s"], args.device)
            print(
                f"{recipe}: {entry['mel_frames_per_s']:,.0f} mel frames/s, {format_report(entry['throughput'])}"
            )
        entry.update(eval_tones(ckpt, prompts) if recipe == "tones" else eval_speech(ckpt, prompts))
        if curve and recipe not in given:
            entry["curve"] = quality_curve(run_dir, prompts, [int(n) for n in args.curve_nfe.split(",")])
        report[recipe] = entry
        print(
            f"{recipe}: "
            + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in entry.items()
                if not isinstance(v, (list, dict))
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_bench.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'train_bench.json'}")
    return 0
