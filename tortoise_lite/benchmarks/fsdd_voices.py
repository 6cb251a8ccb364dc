"""Zero-shot voices on real speakers: ``python -m tortoise_lite.bench fsdd_voices --data PATH/fsdd
--heldout-speaker yweweler [--minutes 13.5] [--ckpt PATH] [--threads N] [--out outputs/bench_fsdd_voices]``.

The Free Spoken Digit Dataset (FSDD: 4 speakers, 8 kHz digit words; takes 0-4 held out, 5-49 for training)
with one speaker left out of training altogether. The benchmark

1. builds the ``+recipe=small_corpus`` folder from takes 5-49 of every speaker except ``--heldout-speaker``
   (``OUT/corpus_without_<speaker>/``): the model never hears that speaker;
2. trains the recipe for ``--minutes`` with a reference encoder instead of a speaker table
   (``model.voice_dim=128 data.references=3 model.n_speakers=0``: each item is conditioned on 3 other
   utterances of its speaker);
3. measures, with every recording conditioned as training conditioned it (the checkpoint's
   ``data.limits``: silence trimmed, one loudness):

   a. the judge: a speaker verifier (``tortoise_lite.evaluation.speaker``) trained on the training
      speakers' training takes (``--train-takes``, 5-49), and its equal error rate on takes 0-4 of all four speakers (only 3 training
      speakers: a weak judge, scored on a voice it never saw);
   b. voice latents from ``--refs`` clips of each speaker (takes 5, 6, 7 of digits 0, 1, 2 by default),
      through ``TextToSpeech.voice_latent(paths)`` as a user gives them (the API trims them and brings them
      to the checkpoint's ``data.limits.loudness_dbfs``, as training levelled its references; before it
      levelled, yweweler, recorded 14 dB quieter, was identified 16.7 %); every digit word is generated
      ``--seeds`` times in each voice and rendered with Griffin-Lim. Two controls: the clips conditioned
      by the benchmark itself as training conditioned them (``refs_levelled``), and without
      any voice (``no_voice``: the learned average voice, labelled with the held-out speaker, so its
      "identification" is how often the average voice alone passes for that speaker);
   c. identification among the four speakers (nearest centroid of takes 0-4, the real recordings) and the
      cosine to the requested speaker's centroid, next to the same figures for the ground truth (takes
      5-49, the reference clips left out, through the same mel + Griffin-Lim) and chance (1/4);
   d. intelligibility: the digit classifier (``tortoise_lite.evaluation.digits``, trained on takes 0-4)
      on the generated digits of the held-out voice vs the trained voices, with its ceiling (takes 5-49
      of the same speaker through mel + Griffin-Lim).

Writes ``OUT/fsdd_voices.json`` and ``OUT/fsdd_voices.png`` (per speaker: identification of generated
speech vs ground truth, digit accuracy vs ceiling), a few wavs; prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tortoise_lite.evaluation.digits import DIGIT_WORDS, TEST_TAKES, FsddError, fsdd_files

VOICE_OVERRIDES = ["model.voice_dim=128", "data.references=3", "model.n_speakers=0"]
VARIANTS = ("refs", "refs_levelled", "no_voice")


def _log(msg: str) -> None:
    print(f"[bench fsdd_voices] {msg}", flush=True)


def _takes(text: str) -> range:
    """``"5-49"`` -> range(5, 50); ``"7"`` -> range(7, 8)."""
    a, _, b = text.partition("-")
    return range(int(a), int(b or a) + 1)


def _limits(info):
    """The checkpoint's prepare conditioning (``data.limits``) as a ``PrepareLimits``."""
    from tortoise_lite.data.preparation import PrepareLimits

    cfg = dict(((info.config or {}).get("data") or {}).get("limits") or {})
    fields = PrepareLimits.__dataclass_fields__
    return PrepareLimits(**{k: v for k, v in cfg.items() if k in fields})


class _Recordings:
    """FSDD recordings as training saw them: read at the model's rate, conditioned (trim, loudness)."""

    def __init__(self, tts, limits) -> None:
        from tortoise_lite.vocoders import GriffinLim

        self.tts, self.limits = tts, limits
        self.vocoder = GriffinLim(tts.mel_spec)
        self._wavs: dict[Path, torch.Tensor] = {}

    def wav(self, path: Path) -> torch.Tensor:
        from tortoise_lite.audio.io import load_audio
        from tortoise_lite.data.preparation import condition_audio

        if path not in self._wavs:
            wav = torch.as_tensor(np.asarray(load_audio(path, self.tts.sample_rate), dtype=np.float32))
            self._wavs[path] = condition_audio(wav, self.tts.sample_rate, self.limits)
        return self._wavs[path]

    def mel(self, path: Path) -> torch.Tensor:
        return self.tts.mel_spec(self.wav(path))

    def rendered(self, mel: torch.Tensor) -> torch.Tensor:
        """A log-mel through Griffin-Lim and back: what generated speech goes through."""
        from tortoise_lite.evaluation.digits import through_vocoder

        return through_vocoder(mel, self.vocoder)


def _reference_files(tts, files, refs: int) -> list[Path]:
    """``refs`` clips of one speaker as a user would pick them: digit k's take 5 + k first (k = 0, 1, ...),
    then the rest; clips the reference encoder refuses (too short once trimmed) are skipped."""
    from tortoise_lite.voice.clips import VoiceError, load_clip
    from tortoise_lite.voice.resolve import reference_frames

    by_key = {(f.digit, f.take): f.path for f in files}
    first = [by_key[(d, 5 + d)] for d in range(10) if (d, 5 + d) in by_key]
    picked: list[Path] = []
    for p in dict.fromkeys([*first, *(f.path for f in files)]):
        try:
            load_clip(p, tts.mel_spec, reference_frames(tts.info))
        except VoiceError:
            continue
        picked.append(p)
        if len(picked) == refs:
            break
    return picked


def _generate(
    tts, rec: _Recordings, words: list[str], seeds: int, voice, wav: Path | None = None
) -> tuple[list, list[int]]:
    """Every word ``seeds`` times in ``voice`` -> Griffin-Lim-rendered log-mels and their digits; the first
    generation is written to ``wav`` when given."""
    from tortoise_lite.audio import save_wav

    mels, digits = [], []
    for r in range(seeds):
        gen, _ = tts.generate_mels(words, seed=[1000 * r + d for d in range(len(words))], voice=voice)
        if wav is not None and r == 0:
            save_wav(wav, tts.vocode(gen[:1])[0].numpy(), tts.sample_rate)
        mels += [rec.rendered(m) for m in gen]
        digits += list(range(len(words)))
    return mels, digits


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = report["speakers"]
    held = report["heldout_speaker"]
    x = np.arange(len(speakers))
    gen = report["generated"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.6))
    bars = [
        ("generated (user's clips)", [gen["refs"][s]["identification"] for s in speakers]),
        ("generated (levelled clips)", [gen["refs_levelled"][s]["identification"] for s in speakers]),
        ("ground truth via mel + GL", [report["ground_truth"][s]["identification"] for s in speakers]),
    ]
    for k, (label, v) in enumerate(bars):
        a1.bar(x + (k - 1) * 0.27, np.asarray(v) * 100, 0.27, label=label)
    a1.axhline(100 * report["chance"], color="gray", lw=0.8, ls=":", label="chance")
    k = speakers.index(held)
    nv = 100 * gen["no_voice"][held]["identification"]
    a1.hlines(nv, k - 0.45, k + 0.45, color="k", lw=1.5, label=f"no voice, taken for {held}")
    a1.set_xticks(x, [f"{s}\n(held out)" if s == held else s for s in speakers])
    a1.set_ylim(0, 105)
    a1.set_ylabel("identified as the requested speaker (%)")
    a1.set_title(f"speaker identification among {len(speakers)} (nearest centroid)", fontsize=9)
    a1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    acc = [gen["refs"][s]["digit_accuracy"] * 100 for s in speakers]
    ceil = [(report["digits"]["ceiling_by_speaker"].get(s) or 0.0) * 100 for s in speakers]
    a2.bar(x - 0.2, acc, 0.4, label="generated digits (user's clips)")
    a2.bar(x + 0.2, ceil, 0.4, label="ceiling: takes 5-49 via mel + GL")
    a2.axhline(10, color="gray", lw=0.8, ls=":", label="chance")
    a2.set_xticks(x, [f"{s}\n(held out)" if s == held else s for s in speakers])
    a2.set_ylim(0, 105)
    a2.set_ylabel("digits recognized (%)")
    t = report.get("training") or {}
    steps = t.get("steps", report.get("global_step"))
    a2.set_title(f"intelligibility; model: {steps} steps", fontsize=9)
    a2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(
    ckpt: Path,
    data: str,
    heldout: str,
    out: Path,
    refs: int = 3,
    seeds: int = 3,
    words: list[str] | None = None,
    gt_takes: range = range(5, 50),
    train_takes: range = range(5, 50),
    verifier_steps: int = 600,
    ceiling: bool = True,
    seed: int = 0,
) -> dict:
    """The measurements of steps 3a-d (module doc) for one checkpoint; returns the report."""
    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.evaluation.digits import accuracy_by_speaker, classifier_for
    from tortoise_lite.evaluation.speaker import equal_error_rate, load_or_train, similarity_report

    words = list(words or DIGIT_WORDS)
    tts = TextToSpeech.from_checkpoint(ckpt)
    if tts.voice_dim <= 0:
        raise ValueError(f"{ckpt} was trained without a reference encoder (model.voice_dim=0)")
    trained_voices = tts.trained_voices
    if heldout in trained_voices or heldout in tts.speakers:
        raise ValueError(f"{ckpt} was trained on the held-out speaker {heldout!r} (voices {trained_voices})")
    all_files = fsdd_files(data)
    speakers = sorted({f.speaker for f in all_files})
    if heldout not in speakers:
        raise FsddError(f"{data}: no recordings of speaker {heldout!r} (speakers: {', '.join(speakers)})")
    trained = [s for s in speakers if s in trained_voices]
    if not trained:
        raise ValueError(f"{ckpt}: none of the FSDD speakers {speakers} is among its voices {trained_voices}")
    speakers = sorted([heldout, *trained])
    n_words = len(words)
    rec = _Recordings(tts, _limits(tts.info))
    timings: dict[str, float] = {}

    # a. the judge
    t0 = time.monotonic()
    clips = {s: [rec.mel(f.path) for f in fsdd_files(data, train_takes, [s])] for s in trained}
    verifier = load_or_train(clips, tts.mel_spec, cache_dir=out, steps=verifier_steps, seed=seed)
    enroll = {s: [rec.mel(f.path) for f in fsdd_files(data, TEST_TAKES, [s])] for s in speakers}
    enroll_emb = {s: verifier.embed_mels(m) for s, m in enroll.items()}
    emb = torch.cat([enroll_emb[s] for s in speakers])
    labels = [s for s in speakers for _ in enroll[s]]
    eer_all = equal_error_rate(emb, labels)
    keep = [i for i, s in enumerate(labels) if s != heldout]
    eer_trained = equal_error_rate(emb[keep], [labels[i] for i in keep]) if len(trained) > 1 else None
    timings["verifier_s"] = time.monotonic() - t0
    _log(
        f"speaker verifier on {len(trained)} training speakers ({timings['verifier_s']:.0f} s): EER on takes "
        f"0-4 of all {len(speakers)} speakers {eer_all:.3f}"
        + ("" if eer_trained is None else f" (training speakers only {eer_trained:.3f})")
    )

    # ground truth through mel + Griffin-Lim (the identification ceiling)
    t0 = time.monotonic()
    ref_files = {s: _reference_files(tts, fsdd_files(data, range(5, 50), [s]), refs) for s in speakers}
    gt_probes = [
        (rec.rendered(rec.mel(f.path)), s)
        for s in speakers
        for f in fsdd_files(data, gt_takes, [s])
        if f.digit < n_words and f.path not in ref_files[s]
    ]
    truth = similarity_report(verifier, enroll, gt_probes)
    timings["ground_truth_s"] = time.monotonic() - t0

    # b. generation in every voice (and the controls)
    t0 = time.monotonic()
    gen: dict[str, dict[str, tuple[list, list[int]]]] = {v: {} for v in VARIANTS}
    latents = {}
    for s in speakers:
        paths = ref_files[s]
        latents[s] = tts.voice_latent([str(p) for p in paths])  # the user's path: files -> latent
        levelled = tts.voice_latent([(rec.wav(p).numpy(), tts.sample_rate) for p in paths])
        gen["refs"][s] = _generate(tts, rec, words, seeds, latents[s], out / f"{s}_generated_{words[0]}.wav")
        gen["refs_levelled"][s] = _generate(tts, rec, words, seeds, levelled)
    gen["no_voice"][heldout] = _generate(tts, rec, words, seeds, None, out / f"no_voice_{words[0]}.wav")
    timings["generate_s"] = time.monotonic() - t0

    # c. identification + d. intelligibility
    t0 = time.monotonic()
    clf, cinfo = classifier_for(tts.mel_spec, data, seed=seed, ceiling=ceiling, cache_dir=out)
    ceilings = {s: (cinfo.get("ceiling_by_speaker") or {}).get(s, {}).get("accuracy") for s in speakers}
    generated: dict[str, dict[str, dict]] = {}
    for variant, per in gen.items():
        generated[variant] = {}
        for s, (mels, digits) in per.items():
            sim = similarity_report(verifier, enroll, [(m, s) for m in mels])
            pred = clf.predict(mels)
            generated[variant][s] = {
                "identification": sim["accuracy"],
                "cosine": sim["cosine"],
                "identified_as": {n: sim["identified"].count(n) for n in sorted(enroll)},
                "digit_accuracy": accuracy_by_speaker(pred, digits, [s] * len(digits))[s]["accuracy"],
                "n": len(mels),
            }
    timings["measure_s"] = time.monotonic() - t0

    def group(names: list[str], variant: str = "refs") -> dict:
        g = [generated[variant][s] for s in names]
        gt_rows = [truth["per_voice"][s] for s in names]
        cl = [ceilings[s] for s in names]
        return {
            "speakers": names,
            "identification": _mean(g, "identification"),
            "cosine": _mean(g, "cosine"),
            "digit_accuracy": _mean(g, "digit_accuracy"),
            "ground_truth_identification": _mean(gt_rows, "accuracy"),
            "ground_truth_cosine": _mean(gt_rows, "cosine"),
            "digit_ceiling": None if None in cl else float(np.mean(cl)),
        }

    return {
        "checkpoint": str(ckpt),
        "global_step": tts.info.global_step,
        "heldout_speaker": heldout,
        "trained_speakers": trained,
        "trained_voices": trained_voices,
        "speakers": speakers,
        "chance": 1.0 / len(speakers),
        "settings": {
            "refs": refs,
            "reference_clips": {s: [p.name for p in ref_files[s]] for s in speakers},
            "seeds": seeds,
            "words": words,
            "ground_truth_takes": [gt_takes.start, gt_takes.stop - 1],
            "enroll_takes": [TEST_TAKES.start, TEST_TAKES.stop - 1],
            "conditioning": {"trim_db": rec.limits.trim_db, "loudness_dbfs": rec.limits.loudness_dbfs},
            "vocoder": f"griffin_lim n_iter={rec.vocoder.n_iter}",
        },
        "verifier": {
            "eer_all_speakers_takes_0_4": eer_all,
            "eer_training_speakers_takes_0_4": eer_trained,
            "training_speakers": trained,
            **verifier.info,
        },
        "ground_truth": {
            s: {
                "identification": truth["per_voice"][s]["accuracy"],
                "cosine": truth["per_voice"][s]["cosine"],
                "n": truth["per_voice"][s]["n"],
            }
            for s in speakers
        },
        "generated": generated,
        "heldout": group([heldout]),
        "heldout_levelled": group([heldout], "refs_levelled"),
        "trained": group(trained),
        "trained_levelled": group(trained, "refs_levelled"),
        "digits": {
            "ceiling_by_speaker": ceilings,
            "ceiling": cinfo.get("ceiling"),
            "classifier": {k: v for k, v in cinfo.items() if k != "ceiling_by_speaker"},
        },
        "timings": timings,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench fsdd_voices", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", required=True, help="the FSDD folder (holding recordings/)")
    ap.add_argument("--heldout-speaker", required=True, help="the speaker never trained on")
    ap.add_argument("--out", default="outputs/bench_fsdd_voices")
    ap.add_argument("--minutes", type=float, default=13.5, help="training budget (trainer.max_time)")
    ap.add_argument("--max-steps", type=int, default=None, help="a step budget instead of --minutes")
    ap.add_argument("--ckpt", default=None, help="evaluate this checkpoint instead of training")
    ap.add_argument("--text", default="phonemes", choices=["phonemes", "chars"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--refs", type=int, default=3, help="reference clips per voice")
    ap.add_argument("--seeds", type=int, default=3, help="generations per voice and digit")
    ap.add_argument("--digits", type=int, default=10, help="digit words generated (the first N)")
    ap.add_argument("--train-takes", default="5-49", help="takes of the training corpus")
    ap.add_argument("--gt-takes", default="5-49", help="ground-truth takes measured through mel + GL")
    ap.add_argument("--verifier-steps", type=int, default=600, help="speaker verifier training steps")
    ap.add_argument(
        "--no-ceiling", action="store_true", help="skip the digit classifier's ceiling (quick runs)"
    )
    ap.add_argument("--seed", type=int, default=0, help="verifier and classifier seed")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the recipe")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    from tortoise_lite.benchmarks.fsdd import _train, build_corpus
    from tortoise_lite.checkpoint import CheckpointError

    try:
        speakers = sorted({f.speaker for f in fsdd_files(args.data)})
        if args.heldout_speaker not in speakers:
            raise FsddError(
                f"{args.data}: no recordings of speaker {args.heldout_speaker!r} (speakers: {', '.join(speakers)})"
            )
        if args.ckpt:
            ckpt, training = Path(args.ckpt), {}
        else:
            corpus = out / f"corpus_without_{args.heldout_speaker}"
            build_corpus(
                args.data, corpus, takes=_takes(args.train_takes), exclude_speakers=[args.heldout_speaker]
            )
            if (corpus / args.heldout_speaker).exists():
                raise FsddError(f"{corpus / args.heldout_speaker}: the held-out speaker is in the corpus")
            ckpt, training = _train(
                corpus,
                out / f"run_{args.text}",
                args.minutes,
                [*VOICE_OVERRIDES, f"text={args.text}", *args.overrides],
                max_steps=args.max_steps,
            )
        t_eval = time.monotonic()
        report = evaluate(
            ckpt,
            args.data,
            args.heldout_speaker,
            out,
            refs=args.refs,
            seeds=args.seeds,
            words=list(DIGIT_WORDS[: args.digits]),
            gt_takes=_takes(args.gt_takes),
            train_takes=_takes(args.train_takes),
            verifier_steps=args.verifier_steps,
            ceiling=not args.no_ceiling,
            seed=args.seed,
        )
    except (FsddError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {
        "data": str(Path(args.data).resolve()),
        "text": args.text,
        "threads": torch.get_num_threads(),
        "minutes_budget": None if args.max_steps or args.ckpt else args.minutes,
        "max_steps": args.max_steps,
        "train_takes": args.train_takes,
        "training": training,
        "eval_wall_s": time.monotonic() - t_eval,
        "total_wall_s": time.monotonic() - t_start,
        **report,
    }
    (out / "fsdd_voices.json").write_text(json.dumps(report, indent=2))
    _plot(report, out / "fsdd_voices.png")
    _print(report)
    _log(f"wrote {out / 'fsdd_voices.json'} and {out / 'fsdd_voices.png'}")
    return 0


def _print(r: dict) -> None:
    v = r["verifier"]
    print(
        f"speaker verifier ({len(v['training_speakers'])} training speakers): EER on takes 0-4 of all "
        f"{len(r['speakers'])} speakers {v['eer_all_speakers_takes_0_4']:.3f}"
    )
    held = r["heldout_speaker"]
    print(
        f"{'speaker':22s} {'ident. gen':>10s} {'levelled':>9s} {'GT':>6s}  {'cos gen':>7s} {'GT':>6s}  "
        f"{'digits gen':>10s} {'ceiling':>8s}"
    )
    for s in r["speakers"]:
        g, lv, t = r["generated"]["refs"][s], r["generated"]["refs_levelled"][s], r["ground_truth"][s]
        c = r["digits"]["ceiling_by_speaker"].get(s)
        name = f"{s} (held out)" if s == held else s
        print(
            f"{name:22s} {g['identification']:10.1%} {lv['identification']:9.1%} {t['identification']:6.1%}  "
            f"{g['cosine']:7.3f} {t['cosine']:6.3f}  {g['digit_accuracy']:10.1%} "
            + ("     n/a" if c is None else f"{c:8.1%}")
        )
    nv = r["generated"]["no_voice"][held]
    print(
        f"no voice (average voice): identified as {held} {nv['identification']:.1%}, cosine {nv['cosine']:.3f}, "
        f"identified as {nv['identified_as']}; chance {r['chance']:.0%}"
    )
    h, t = r["heldout"], r["trained"]
    print(
        f"held-out voice: identified {h['identification']:.1%} (ground truth {h['ground_truth_identification']:.1%}), "
        f"digits {h['digit_accuracy']:.1%}; trained voices: identified {t['identification']:.1%} "
        f"(ground truth {t['ground_truth_identification']:.1%}), digits {t['digit_accuracy']:.1%}"
    )
    tr = r.get("training") or {}
    if tr:
        print(
            f"training: {tr['steps']} steps, {tr['train_wall_s'] / 60:.1f} min wall, {r['threads']} torch "
            f"thread(s); evaluation {r['eval_wall_s'] / 60:.1f} min; total {r['total_wall_s'] / 60:.1f} min"
        )
