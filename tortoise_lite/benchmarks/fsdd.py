"""Real recordings: ``python -m tortoise_lite.bench fsdd --data PATH/fsdd [--minutes 15] [--text phonemes]``.

The Free Spoken Digit Dataset (FSDD; 8 kHz digit words, CC BY-SA 4.0) is never shipped with the package:
pass the folder that holds its ``recordings/{digit}_{speaker}_{take}.wav``. The benchmark

1. builds the layout ``+recipe=small_corpus`` reads from the training takes (5-49): ``OUT/corpus/<speaker>/
   <digit>_<speaker>_<take>.wav`` + ``.txt`` with the digit word;
2. trains the recipe for ``--minutes`` (``trainer.max_time``; prepare and the final samples come on top);
3. trains the digit classifier (``tortoise_lite.evaluation.digits``) on the held-out takes 0-4 through the
   checkpoint's mel + Griffin-Lim, and measures its ceiling: its accuracy on the training takes 5-49
   through the same pipeline, per speaker;
4. generates every digit for every trained speaker (``--seeds`` seeds each, the sampler's default steps),
   renders it with Griffin-Lim and classifies it.

Writes ``OUT/fsdd_bench.json`` (accuracy per speaker with its ceiling, confusions, wall times, threads) and
``OUT/fsdd_bench.png`` (accuracy vs ceiling per speaker); prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tortoise_lite.evaluation.digits import DIGIT_WORDS, FsddError, fsdd_files


def build_corpus(
    data: str | os.PathLike,
    out: str | os.PathLike,
    takes: range = range(5, 50),
    exclude_speakers: tuple[str, ...] | list[str] = (),
) -> Path:
    """Copy the FSDD recordings of ``takes`` into ``out/<speaker>/<stem>.wav`` + ``<stem>.txt`` (digit word),
    leaving out the speakers named in ``exclude_speakers``.

    Returns ``out``. Files already there with the same size are kept (re-running is cheap).
    """
    out = Path(out)
    files = [f for f in fsdd_files(data, takes=takes) if f.speaker not in set(exclude_speakers)]
    for f in files:
        folder = out / f.speaker
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f.path.name
        if not dst.is_file() or dst.stat().st_size != f.path.stat().st_size:
            shutil.copyfile(f.path, dst)
        txt = dst.with_suffix(".txt")
        if not txt.is_file() or txt.read_text() != DIGIT_WORDS[f.digit]:
            txt.write_text(DIGIT_WORDS[f.digit])
    return out


def _train(
    corpus: Path, run_dir: Path, minutes: float, overrides: list[str], max_steps: int | None = None
) -> tuple[Path, dict]:
    from hydra import compose, initialize_config_dir

    from tortoise_lite.paths import config_dir
    from tortoise_lite.training.app import run

    seconds = int(round(minutes * 60))
    max_time = f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "+recipe=small_corpus",
                f"data.root={corpus}",
                f"data.source.prepare_dir={run_dir / 'prepared'}",
                f"output_dir={run_dir}",
                f"trainer.max_time={max_time}" if max_steps is None else "trainer.max_time=null",
                *([f"trainer.max_steps={max_steps}"] if max_steps is not None else []),
                "logger=csv",
                *overrides,
                *(["ckpt_path=last"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []),
            ],
        )
    t0, c0 = time.monotonic(), time.process_time()
    result = run(cfg)
    return result.last_checkpoint, {
        "train_wall_s": time.monotonic() - t0,
        "train_cpu_s": time.process_time() - c0,  # all threads: wall x threads on an idle machine
        "fit_s": result.metrics.get("fit_seconds"),
        "steps": result.global_step,
        "val_loss": result.metrics.get("val/loss"),
        "mel_frames_per_s": result.metrics.get("mel_frames_seen", 0.0)
        / max(result.metrics.get("fit_seconds", 1.0), 1e-9),
    }


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    speakers = sorted(report["speakers"])
    x = np.arange(len(speakers))
    acc = [report["speakers"][s]["accuracy"] * 100 for s in speakers]
    ceil = [report["speakers"][s]["ceiling"] * 100 for s in speakers]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, acc, 0.4, label="generated digits")
    ax.bar(x + 0.2, ceil, 0.4, label="ceiling: recordings (takes 5-49) via mel + Griffin-Lim")
    ax.axhline(90, color="k", lw=0.8, ls="--")
    ax.axhline(10, color="gray", lw=0.8, ls=":", label="chance")
    ax.set_xticks(x, speakers)
    ax.set_ylim(0, 105)
    ax.set_ylabel("digits recognized (%)")
    t = report["training"]
    ax.set_title(
        f"FSDD, text={report['text']}: {t['steps']} steps, {t['train_wall_s'] / 60:.1f} min, {report['threads']} thread(s)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench fsdd", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", required=True, help="the FSDD folder (holding recordings/)")
    ap.add_argument("--out", default="outputs/bench_fsdd")
    ap.add_argument("--minutes", type=float, default=13.5, help="training budget (trainer.max_time)")
    ap.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="a step budget instead of --minutes (on a machine shared with other jobs)",
    )
    ap.add_argument("--text", default="phonemes", choices=["phonemes", "chars"])
    ap.add_argument("--seeds", type=int, default=3, help="generations per speaker and digit")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--ckpt", default=None, help="evaluate this checkpoint instead of training")
    ap.add_argument("--seed", type=int, default=0, help="classifier seed")
    ap.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature (default: the checkpoint's)"
    )
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tortoise_lite.evaluation.digits import evaluate_checkpoint

    out = Path(args.out)
    t_start = time.monotonic()
    try:
        fsdd_files(args.data)  # fails early, naming the folder, when it is not FSDD
        if args.ckpt:
            ckpt, training = Path(args.ckpt), {}
        else:
            corpus = build_corpus(args.data, out / "corpus")
            ckpt, training = _train(
                corpus,
                out / f"run_{args.text}",
                args.minutes,
                [f"text={args.text}", *args.overrides],
                max_steps=args.max_steps,
            )
    except FsddError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t_eval = time.monotonic()
    from tortoise_lite.checkpoint import CheckpointError

    try:
        result = evaluate_checkpoint(
            ckpt,
            args.data,
            seeds=args.seeds,
            classifier_seed=args.seed,
            cache_dir=out,
            temperature=args.temperature,
        )
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {
        "data": str(Path(args.data).resolve()),
        "checkpoint": str(ckpt),
        "text": args.text,
        "threads": torch.get_num_threads(),
        "minutes_budget": None if args.max_steps else args.minutes,
        "max_steps": args.max_steps,
        "temperature": args.temperature,
        "training": training,
        "eval_wall_s": time.monotonic() - t_eval,
        "total_wall_s": time.monotonic() - t_start,
        **result,
    }
    out.mkdir(parents=True, exist_ok=True)
    stem = f"fsdd_bench_{args.text}" + (f"_T{args.temperature:g}" if args.temperature is not None else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    if training:
        _plot(report, out / f"{stem}.png")
    for name, s in sorted(report["speakers"].items()):
        print(
            f"{name:10s} generated {s['accuracy'] * 100:5.1f} %   ceiling {s['ceiling'] * 100:5.1f} %   ({s['n']} digits)"
        )
    print(
        f"all        generated {report['accuracy'] * 100:5.1f} %   ceiling {report['ceiling'] * 100:5.1f} %"
    )
    if training:
        print(
            f"training: {training['steps']} steps, {training['train_wall_s'] / 60:.1f} min wall "
            f"(fit {(training['fit_s'] or 0) / 60:.1f} min, {training['train_cpu_s'] / 60:.1f} CPU-min), "
            f"{report['threads']} torch thread(s), text={args.text}"
        )
    print(f"wrote {out / (stem + '.json')}")
    return 0
