"""Zero-shot voices: is generated speech in the voice it was given, for voices the model never heard?

``python -m tortoise_lite.bench voices --ckpt outputs/voices/checkpoints/last.ckpt [--prompts 8]
[--voice-guidance 1 2] [--out outputs/bench_voices]``

For a checkpoint trained on the ``synthetic_voices`` corpus (``+recipe=voices``):

1. A speaker-verification embedding (``tortoise_lite.evaluation.speaker``) is trained on the training
   voices' ground truth (kept apart from the TTS model; cached). Its own quality: the equal error rate on
   the held-out voices' ground truth (voices neither it nor the TTS model saw).
2. For each held-out voice, its first ``--refs`` clips are the references (the voice latent, as a user
   would give them); its remaining clips enroll the voice for identification. Each voice speaks
   ``--prompts`` held-out prompts (a different set per voice, the same sets for the trained voices).
   The generated speech (Griffin-Lim) is embedded; reported: cosine similarity to the requested voice's
   centroid and identification accuracy among the held-out voices (nearest centroid), next to the same
   figures for the ground truth through the same mel + vocoder (the ceiling), and chance.
3. The same for as many trained voices (references and enrollment from their training utterances), and
   the intelligibility (WER, the corpus recognizer) of both groups: held-out voices should be within 1.3x
   of trained ones.

Writes ``voices.json``, ``voices_confusion.png`` (requested vs identified voice) and a few wavs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _log(msg: str) -> None:
    print(f"[bench voices] {msg}", flush=True)


def _mel_of(tts, path: str) -> torch.Tensor:
    from tortoise_lite.audio.io import load_audio

    wav = load_audio(path, tts.mel_spec.sample_rate)
    return tts.mel_spec(torch.as_tensor(np.asarray(wav, dtype=np.float32)))


def _by_voice(items) -> dict[str, list]:
    out: dict[str, list] = {}
    for it in items:
        out.setdefault(it.speaker, []).append(it)
    return out


def _confusion_png(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report["voices"]
    m = np.asarray(report["confusion"], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(names), 0.8 + 0.45 * len(names)))
    ax.imshow(m, cmap="Blues", vmin=0)
    short = [n.split("+")[-1] for n in names]
    ax.set_xticks(range(len(names)), short, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), short, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("identified voice")
    ax.set_ylabel("requested (held-out) voice")
    ax.set_title(f"zero-shot voices: {report['accuracy']:.0%} identified (chance {report['chance']:.0%})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _group(
    tts,
    verifier,
    recognizer,
    voices: dict[str, list],
    prompt_sets: list[list[str]],
    n_refs: int,
    steps: int | None,
    voice_guidance: float | None,
    seed: int,
    out: Path | None,
) -> dict:
    """Generate, vocode, embed and recognize one group of voices (held-out or trained)."""
    from tortoise_lite.evaluation.intelligibility import intelligibility
    from tortoise_lite.evaluation.speaker import similarity_report

    enroll: dict[str, list[torch.Tensor]] = {}
    gen_probes: list[tuple[torch.Tensor, str]] = []
    gt_probes: list[tuple[torch.Tensor, str]] = []
    wavs, texts, gt_wavs_all, gt_texts = [], [], [], []
    t_gen = 0.0
    for k, (voice, items) in enumerate(sorted(voices.items())):
        mels = [_mel_of(tts, it.audio) for it in items]
        refs, rest = mels[:n_refs], mels[n_refs:]
        half = max(1, len(rest) // 2)
        enroll[voice] = rest[:half]
        latent = tts.voice_latent([it.audio for it in items[:n_refs]])  # the user's path: files -> latent
        prompts = prompt_sets[k % len(prompt_sets)]
        t0 = time.perf_counter()
        gen, _ = tts.generate_mels(
            prompts, steps=steps, seed=seed, voice=latent, voice_guidance=voice_guidance
        )
        t_gen += time.perf_counter() - t0
        gen_wavs = tts.vocode(gen)
        gt_wavs = tts.vocode(rest[half:])  # ground truth through the same mel + vocoder
        gt_wavs_all.extend(w.float().cpu().numpy() for w in gt_wavs)
        gt_texts.extend(it.text for it in items[n_refs + half :])
        for w in gen_wavs:
            gen_probes.append((tts.mel_spec(w.float().cpu()), voice))
        for w in gt_wavs:
            gt_probes.append((tts.mel_spec(w.float().cpu()), voice))
        wavs.extend(w.float().cpu().numpy() for w in gen_wavs)
        texts.extend(prompts)
        if out is not None:
            from tortoise_lite.audio import save_wav

            short = voice.split("+")[-1].replace(" ", "_")
            save_wav(out / f"{short}_generated.wav", gen_wavs[0].float().cpu().numpy(), tts.sample_rate)
            save_wav(
                out / f"{short}_reference.wav",
                tts.vocode([refs[0]])[0].float().cpu().numpy(),
                tts.sample_rate,
            )
    generated = similarity_report(verifier, enroll, gen_probes)
    truth = similarity_report(verifier, enroll, gt_probes)
    names = sorted(enroll)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    for (_, want), got in zip(gen_probes, generated["identified"]):
        confusion[names.index(want), names.index(got)] += 1
    wer = gt_wer = None
    if recognizer is not None:
        wer = intelligibility(recognizer, wavs, texts, tts.sample_rate)
        gt_wer = intelligibility(recognizer, gt_wavs_all, gt_texts, tts.sample_rate)
    return {
        "voices": names,
        "n_voices": len(names),
        "chance": 1.0 / len(names),
        "accuracy": generated["accuracy"],
        "cosine": generated["cosine"],
        "ground_truth_accuracy": truth["accuracy"],
        "ground_truth_cosine": truth["cosine"],
        "per_voice": generated["per_voice"],
        "confusion": confusion.tolist(),
        "wer": None if wer is None else wer.wer,
        "cer": None if wer is None else wer.cer,
        "ground_truth_wer": None if gt_wer is None else gt_wer.wer,
        "n_utterances": len(texts),
        "generate_seconds": t_gen,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench voices", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--ckpt", required=True, help="a checkpoint of +recipe=voices")
    ap.add_argument("--prompts", type=int, default=8, help="held-out prompts spoken per voice")
    ap.add_argument("--refs", type=int, default=3, help="reference clips per voice")
    ap.add_argument(
        "--trained", type=int, default=10, help="trained voices measured beside the held-out ones"
    )
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    ap.add_argument(
        "--voice-guidance", type=float, nargs="+", default=[1.0], help="voice guidance scales to measure"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="outputs/bench_voices")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.data.sources import CorpusSource
    from tortoise_lite.evaluation.references import corpus_recognizer, corpus_source_settings
    from tortoise_lite.evaluation.speaker import equal_error_rate, load_or_train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tts = TextToSpeech.from_checkpoint(args.ckpt)
    if getattr(tts.model, "voice_dim", 0) <= 0:
        _log(f"{args.ckpt} was trained without reference clips (voice_dim=0): train with +recipe=voices")
        return 2
    name, settings = corpus_source_settings(tts.info.config)
    if name != "synthetic_voices":
        _log(f"{args.ckpt} was trained on {name}; this benchmark needs the synthetic_voices corpus")
        return 2
    source = CorpusSource(name, **{**settings, "progress": False})
    corpus = source.corpus(tts.mel_spec)
    train_items = _by_voice(corpus.items())
    heldout = _by_voice(corpus.heldout_voice_items())
    overlap = sorted(set(heldout) & set(tts.info.voices))
    if overlap:
        raise RuntimeError(f"held-out voices {overlap} are among the checkpoint's trained voices")

    t0 = time.perf_counter()
    clips = {v: [_mel_of(tts, it.audio) for it in its] for v, its in sorted(train_items.items())}
    verifier = load_or_train(clips, tts.mel_spec)
    gt_heldout = [(_mel_of(tts, it.audio), v) for v, its in sorted(heldout.items()) for it in its]
    eer = equal_error_rate(verifier.embed_mels([m for m, _ in gt_heldout]), [v for _, v in gt_heldout])
    _log(
        f"speaker verifier on {len(clips)} training voices ({time.perf_counter() - t0:.0f} s): "
        f"EER on the {len(heldout)} held-out voices' ground truth {eer:.3f}"
    )

    prompts = corpus.heldout_prompts()
    n_sets = max(len(heldout), 1)
    prompt_sets = [prompts[(k * args.prompts) % len(prompts) :][: args.prompts] for k in range(n_sets)]
    prompt_sets = [p if len(p) == args.prompts else prompts[: args.prompts] for p in prompt_sets]
    recognizer = corpus_recognizer(tts.info.config, tts.mel_spec)
    names = sorted(train_items)
    pick = [
        names[round(i * (len(names) - 1) / max(args.trained - 1, 1))]
        for i in range(min(args.trained, len(names)))
    ]
    trained = {v: train_items[v][: args.refs + 9] for v in pick}  # as many clips as a held-out voice

    report = {
        "checkpoint": str(args.ckpt),
        "global_step": tts.info.global_step,
        "verifier": {"eer_heldout_ground_truth": eer, "training_voices": len(clips), **verifier.info},
        "settings": {
            "prompts_per_voice": args.prompts,
            "refs": args.refs,
            "steps": args.steps,
            "seed": args.seed,
        },
        "runs": [],
    }
    for vg in args.voice_guidance:
        vg_arg = None if vg == 1.0 else vg
        held = _group(
            tts, verifier, recognizer, heldout, prompt_sets, args.refs, args.steps, vg_arg, args.seed, out
        )
        tr = _group(
            tts, verifier, recognizer, trained, prompt_sets, args.refs, args.steps, vg_arg, args.seed, None
        )
        ratio = held["wer"] / max(tr["wer"], 1e-9)
        report["runs"].append({"voice_guidance": vg, "heldout": held, "trained": tr, "wer_ratio": ratio})
        _log(
            f"voice_guidance {vg}: held-out voices identified {held['accuracy']:.1%} among {held['n_voices']} "
            f"(ground truth {held['ground_truth_accuracy']:.1%}, chance {held['chance']:.1%}), cosine "
            f"{held['cosine']:.3f} (ground truth {held['ground_truth_cosine']:.3f}); trained voices "
            f"{tr['accuracy']:.1%} (ground truth {tr['ground_truth_accuracy']:.1%}); WER held-out "
            f"{held['wer']:.3f} vs trained {tr['wer']:.3f} (ratio {ratio:.2f}; ground truth through mel + vocoder "
            f"{held['ground_truth_wer']:.3f} / {tr['ground_truth_wer']:.3f})"
        )
        _confusion_png(held, out / f"voices_confusion_vg{vg:g}.png")
    (out / "voices.json").write_text(json.dumps(report, indent=2))
    _log(f"wrote {out / 'voices.json'} and the confusion matrices (PNG)")
    return 0
