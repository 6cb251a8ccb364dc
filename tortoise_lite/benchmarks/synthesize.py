"""``python -m tortoise_lite.bench synthesize --ckpt PATH``: text-to-wav real-time factor on CPU.

RTF = wall time / seconds of audio produced, for a fixed set of texts, at 4, 10 and 25 NFE with the
checkpoint's (default) sampler, split into acoustic model (text -> mel) and vocoder (mel -> wav) time;
Griffin-Lim always, plus a trained vocoder with ``--vocoder-ckpt``. Each figure is the best of
``--repeats`` runs after one warm-up (the box may be shared). Targets for the default speech model on 2
threads at 10 NFE: RTF <= 0.15 with the trained vocoder, <= 0.3 with Griffin-Lim (printed, not asserted).

Without ``--ckpt`` nothing is trained: the benchmark says how to get a checkpoint, and with
``--vocoder-ckpt`` alone it measures the vocoders on the mels of eSpeak renderings of the same texts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

#: texts for speech checkpoints (phonemes or characters) and for note checkpoints
SPEECH_TEXTS = (
    "The quiet farmer finds the old lamp in the morning.",
    "Every green bird follows that ship again.",
    "4 0 7 2 9 1",
    "Look, the happy robot paints a window outside!",
)
NOTE_TEXTS = ("C4 E4 G4 C5 G4 E4", "A3 C4 E4 A4 R E4", "D4 F#4 A4 D5", "G3 B3 D4 G4 B4 D5")
TARGETS = {"trained": 0.15, "griffin_lim": 0.3}  # RTF at 10 NFE, default speech model, 2 threads
NFES = (4, 10, 25)
NO_CKPT = (
    "no --ckpt given: this benchmark trains nothing. Train the default speech model first:\n"
    "  python -m tortoise_lite.train +recipe=speech\n"
    "then run: python -m tortoise_lite.bench synthesize --ckpt outputs/speech/checkpoints/last.ckpt "
    "[--vocoder-ckpt outputs/vocoder/vocoder.pt]\n"
    "(or pass --vocoder-ckpt alone to time only the vocoders)"
)


def _best(fn, repeats: int) -> tuple[float, Any]:
    from tortoise_lite.benchmarks.vocoders import synchronize

    out, best = None, float("inf")
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        out = fn()
        synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _texts(tokenizer: Any, n: int) -> list[str]:
    pool = NOTE_TEXTS if getattr(tokenizer, "kind", "") == "notes" else SPEECH_TEXTS
    return [pool[i % len(pool)] for i in range(n)]


def _vocoders(args: argparse.Namespace, mel_spec: Any) -> dict[str, Any]:
    from tortoise_lite.api import build_vocoder

    vocs = {"griffin_lim": build_vocoder("griffin_lim", mel_spec)}
    if args.vocoder_ckpt:
        vocs["trained"] = build_vocoder(args.vocoder_ckpt, mel_spec)
    return {k: v.to(args.device) for k, v in vocs.items()}


def _time_vocoder(vocoder: Any, mels: list[torch.Tensor], repeats: int) -> float:
    from tortoise_lite.benchmarks.vocoders import vocoder_device

    device = vocoder_device(vocoder)

    @torch.no_grad()
    def run() -> None:
        for m in mels:  # generate_mels returns CPU tensors: the copy to the vocoder's device is timed
            vocoder(m[None].to(device))

    run()  # warm-up
    return _best(run, repeats)[0]


def _vocoders_only(args: argparse.Namespace) -> dict[str, Any]:
    """Vocoder RTF on mels of eSpeak renderings (no acoustic model)."""
    from tortoise_lite.api import build_vocoder
    from tortoise_lite.evaluation.references import speech_reference
    from tortoise_lite.text.tokenizers import PhonemeTokenizer

    probe = build_vocoder(args.vocoder_ckpt, _any_mel_spec(args.vocoder_ckpt))
    mel_spec = probe.mel_spec
    tok = PhonemeTokenizer()
    refs = [speech_reference(t, mel_spec, tok) for t in SPEECH_TEXTS[: args.n_texts]]
    mels = [r.mel for r in refs]
    seconds = sum(len(r.wav) for r in refs) / mel_spec.sample_rate
    rows = {}
    for name, voc in {"griffin_lim": build_vocoder("griffin_lim", mel_spec), "trained": probe}.items():
        t = _time_vocoder(voc.to(args.device), mels, args.repeats)
        rows[name] = {"vocoder_seconds": t, "vocoder_rtf": t / seconds}
        print(f"  {name:<12} vocoder RTF {t / seconds:.4f}  ({t:.3f} s for {seconds:.2f} s of audio)")
    return {"audio_seconds": seconds, "vocoders": rows}


def _any_mel_spec(path: str) -> Any:
    from tortoise_lite.vocoders import load_vocoder

    return load_vocoder(path).mel_spec


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tortoise_lite.bench synthesize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--ckpt", help="text-to-mel checkpoint (python -m tortoise_lite.train +recipe=speech)")
    ap.add_argument("--vocoder-ckpt", help="a trained vocoder checkpoint (timed beside Griffin-Lim)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where the model and vocoders run")
    ap.add_argument("--nfe", default=",".join(map(str, NFES)), help="comma-separated NFE budgets")
    ap.add_argument("--n-texts", type=int, default=4, help="texts synthesized per measurement")
    ap.add_argument("--batch-size", type=int, default=1, help="texts per acoustic-model batch")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timed runs")
    ap.add_argument("--reference-durations", action="store_true",
                    help="speech: generate with eSpeak's durations of the texts (realistic lengths for an "
                         "under-trained checkpoint whose duration predictor is not yet useful)")  # fmt: skip
    ap.add_argument("--out", default="bench_out/synthesize", help="folder for synthesize.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tortoise_lite.evaluation.cli import write_json

    out = Path(args.out)
    if not args.ckpt:
        print(NO_CKPT)
        if not args.vocoder_ckpt:
            return 2
        print(f"\nvocoders only, {args.threads} threads:")
        report = {"threads": args.threads, "device": args.device, **_vocoders_only(args)}
        print(f"wrote {write_json(out / 'synthesize_vocoders.json', report)}")
        return 0

    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.evaluation.quality import steps_for_nfe

    model, info = load_checkpoint(args.ckpt, device=args.device)
    vocoders = _vocoders(args, model.mel_spec)
    tts = TextToSpeech(model, vocoder=vocoders["griffin_lim"], info=info)
    texts = _texts(tts.tokenizer, args.n_texts)
    sampler = model.sampler
    name = getattr(sampler, "name", "dpmpp_2m")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{info.path} ({n_params / 1e6:.1f} M parameters, step {info.global_step}), sampler {name}, "
          f"{args.device}, {args.threads} threads, {len(texts)} texts, best of {args.repeats}")  # fmt: skip
    durations = None
    if args.reference_durations:
        from tortoise_lite.evaluation.references import speech_reference

        refs = [speech_reference(t, tts.mel_spec, tts.tokenizer) for t in texts]
        if any(r.durations is None for r in refs):
            print("error: --reference-durations needs a phoneme checkpoint whose tokens align with eSpeak")
            return 2
        durations = [r.durations for r in refs]
    from tortoise_lite.benchmarks.flops import inference_flops_per_frame, inference_report

    flops_per_frame = inference_flops_per_frame(model)  # one NFE (guidance doubles it)
    rows = []
    for nfe in [int(x) for x in args.nfe.split(",") if x.strip()]:
        steps = steps_for_nfe(name, nfe)

        def acoustic(steps: int = steps) -> tuple[list[torch.Tensor], Any]:
            return tts.generate_mels(
                texts, sampler=sampler, steps=steps, seed=0, batch_size=args.batch_size, durations=durations
            )

        acoustic()  # warm-up
        t_ac, (mels, wrapper) = _best(acoustic, args.repeats)
        seconds = sum(m.shape[-1] for m in mels) * tts.mel_spec.hop / tts.mel_spec.sample_rate
        row: dict[str, Any] = {
            "nfe": wrapper.nfe, "steps": steps, "audio_seconds": seconds,
            "acoustic_seconds": t_ac, "acoustic_rtf": t_ac / seconds, "vocoders": {},
        }  # fmt: skip
        perf = inference_report(flops_per_frame, mels, len(texts), t_ac, wrapper.nfe, args.device)
        row["acoustic"] = perf  # mel frames/s, samples/s, audio s per wall s, TFLOP/s, MFU, memory peak
        print(f"  NFE {wrapper.nfe:>3}  acoustic: {perf['summary']}")
        for vname, voc in vocoders.items():
            t_v = _time_vocoder(voc, mels, args.repeats)
            total = (t_ac + t_v) / seconds
            row["vocoders"][vname] = {"vocoder_seconds": t_v, "vocoder_rtf": t_v / seconds, "rtf": total,
                                      "audio_s_per_wall_s": 1.0 / total}  # fmt: skip
            mark = ""
            if wrapper.nfe == 10:
                mark = f"  (target <= {TARGETS[vname]}: {'met' if total <= TARGETS[vname] else 'NOT met'})"
            print(f"  NFE {wrapper.nfe:>3}  {vname:<12} RTF {total:.4f} = acoustic {t_ac / seconds:.4f} + "
                  f"vocoder {t_v / seconds:.4f}   ({seconds:.2f} s audio, {1 / total:,.1f} audio s per wall s){mark}")  # fmt: skip
        rows.append(row)
    report = {
        "checkpoint": str(info.path), "parameters": n_params, "sampler": name, "threads": args.threads,
        "device": args.device,
        "texts": texts, "repeats": args.repeats, "targets_at_10_nfe": TARGETS, "rows": rows,
        "reference_durations": bool(args.reference_durations),
    }  # fmt: skip
    print(f"wrote {write_json(out / 'synthesize.json', report)}")
    return 0
