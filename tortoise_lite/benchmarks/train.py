"""Training-quality benchmark: ``python -m tortoise_lite.bench train [--recipes tones,speech] [--out DIR]``.

Trains each recipe with its default budget (``--max-steps`` / extra Hydra overrides shrink it), then
measures on the held-out prompts of its corpus:

* ``tones``: note pitch accuracy = share of notes whose median librosa.pyin F0 (over the middle half of
  the note's predicted frames) is within 50 cents of the written note (target >= 95%).
* ``speech``: mel-cepstral distortion (dB, DTW-aligned, c1..c24 of the log-mel DCT) and F0 RMSE
  (cents, DTW path, frames voiced in both) against the eSpeak NG rendering of the same prompt.
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
    """Run the app; returns (last checkpoint, fit seconds, mel frames trained on)."""
    from hydra import compose, initialize_config_dir

    from tortoise_lite.paths import config_dir
    from tortoise_lite.training.app import run

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"+recipe={recipe}", f"output_dir={out}", "logger=all", *extra])
    t0 = time.monotonic()
    result = run(cfg)
    seconds = time.monotonic() - t0
    return result.last_checkpoint, seconds, result.metrics.get("mel_frames_seen", 0.0)


def _pyin(wav: np.ndarray, spec, fmin: float, fmax: float):
    """librosa.pyin on the MelSpec's frame grid (frame i = mel frame i); short inputs are zero-padded."""
    import librosa

    if len(wav) < spec.n_fft:
        wav = np.pad(wav, (0, spec.n_fft - len(wav)))
    return librosa.pyin(
        wav,
        fmin=fmin,
        fmax=fmax,
        sr=spec.sample_rate,
        frame_length=spec.n_fft,
        hop_length=spec.hop,
        center=False,
    )


def _generate_with_durations(model, text: str, seed: int = 0):
    """-> (mel (n_mels, T), frames per token (L,)) with the model's own predicted durations."""
    ids = model.tokenizer.encode(text)
    tokens = torch.tensor([ids], device=model.device)
    h, tmask = model.encode_text(tokens, tokens != 0, [text])
    durations, n = model.predict_lengths(h, tmask)
    mel, lengths = model.generate(tokens=tokens, durations=durations, seed=seed)
    return mel[0, :, : int(lengths[0])], durations[0].cpu().numpy(), ids


def eval_tones(ckpt: Path, prompts: list[str]) -> dict:
    import librosa

    from tortoise_lite.checkpoint import load_text_to_mel
    from tortoise_lite.text.tokenizers import note_to_midi
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_text_to_mel(ckpt)
    spec = info.mel_spec
    vocoder = GriffinLim(spec)
    hit = total = 0
    errors = []
    for text in prompts:
        mel, durs, ids = _generate_with_durations(model, text)
        wav = vocoder(mel[None])[0].numpy()
        f0, voiced, _ = _pyin(wav, spec, 65.0, 2100.0)
        symbols = [model.tokenizer.symbols[i] for i in ids]
        start = 0
        for sym, d in zip(symbols, durs):
            seg = f0[start + int(d) // 4 : start + 3 * int(d) // 4]
            start += int(d)
            try:
                midi = note_to_midi(sym)
            except (ValueError, KeyError):
                continue  # rests and non-note symbols
            if midi is None or not isinstance(midi, int):
                continue
            total += 1
            seg = seg[np.isfinite(seg)]
            if len(seg) == 0:
                errors.append(float("inf"))
                continue
            cents = 1200 * math.log2(float(np.median(seg)) / librosa.midi_to_hz(midi))
            errors.append(abs(cents))
            hit += abs(cents) <= 50
    return {"notes": total, "pitch_accuracy_50c": hit / max(total, 1),
            "median_abs_cents": float(np.median(errors)) if errors else None}  # fmt: skip


def _mcd_dtw(ref: np.ndarray, gen: np.ndarray) -> tuple[float, np.ndarray]:
    """Mel-cepstral distortion (dB) between two log-mels (n_mels, T) after DTW; returns (mcd, path)."""
    import librosa
    from scipy.fft import dct

    c_ref = dct(ref, type=2, axis=0, norm="ortho")[1:25]
    c_gen = dct(gen, type=2, axis=0, norm="ortho")[1:25]
    _, path = librosa.sequence.dtw(c_ref, c_gen, metric="euclidean")
    path = path[::-1]
    diff = c_ref[:, path[:, 0]] - c_gen[:, path[:, 1]]
    # Natural-log mel cepstra: the standard MCD constant for ln-based cepstra.
    k = 10.0 / math.log(10.0) * math.sqrt(2.0)
    return float(k * np.mean(np.sqrt((diff**2).sum(axis=0)))), path


def eval_speech(ckpt: Path, prompts: list[str]) -> dict:
    import librosa

    from tortoise_lite.audio.io import load_audio  # noqa: F401  (keeps the audio room the only resampler)
    from tortoise_lite.checkpoint import load_text_to_mel
    from tortoise_lite.text import espeak
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_text_to_mel(ckpt)
    spec = info.mel_spec
    vocoder = GriffinLim(spec)
    mcds, f0_errs = [], []
    for text in prompts:
        syn = espeak.synthesize(text, "en-us")
        ref_wav = librosa.resample(
            syn.float_audio, orig_sr=espeak.native_sample_rate(), target_sr=spec.sample_rate
        )
        ref = spec(torch.from_numpy(ref_wav).float()).numpy()
        mel, _ = model.generate(texts=[text], seed=0)
        gen = mel[0].numpy()
        gen = gen[
            :, : int((gen > math.log(spec.log_floor) + 1e-3).any(axis=0).nonzero()[0].max(initial=0)) + 1
        ]
        mcd, path = _mcd_dtw(ref, gen)
        mcds.append(mcd)
        gen_wav = vocoder(torch.from_numpy(gen)[None])[0].numpy()
        f_ref, v_ref, _ = _pyin(ref_wav, spec, 60.0, 500.0)
        f_gen, v_gen, _ = _pyin(gen_wav, spec, 60.0, 500.0)
        pairs = [(i, j) for i, j in path if i < len(f_ref) and j < len(f_gen) and v_ref[i] and v_gen[j]]
        if pairs:
            c = [1200 * math.log2(f_gen[j] / f_ref[i]) for i, j in pairs]
            f0_errs.append(float(np.sqrt(np.mean(np.square(c)))))
    return {"prompts": len(prompts), "mcd_db": float(np.mean(mcds)),
            "f0_rmse_cents": float(np.mean(f0_errs)) if f0_errs else None}  # fmt: skip


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench train", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--recipes", default="tones,speech")
    ap.add_argument("--out", default="outputs/bench_train")
    ap.add_argument("--max-steps", type=int, default=None, help="shrink the default budget (quick checks)")
    ap.add_argument("--prompts", type=int, default=10, help="held-out prompts evaluated per recipe")
    ap.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="RECIPE=PATH",
        help="evaluate this finished run's checkpoint instead of training the recipe (e.g. the default run's)",
    )
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every recipe")
    args = ap.parse_args(argv)
    given = dict(c.split("=", 1) for c in args.ckpt)
    out = Path(args.out)
    report = {}
    for recipe in [r for r in args.recipes.split(",") if r]:
        extra = list(args.overrides) + (
            [f"trainer.max_steps={args.max_steps}", "samples.enabled=false"] if args.max_steps else []
        )
        run_dir = out / recipe
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
        entry.update(eval_tones(ckpt, prompts) if recipe == "tones" else eval_speech(ckpt, prompts))
        report[recipe] = entry
        print(
            f"{recipe}: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_bench.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'train_bench.json'}")
    return 0
