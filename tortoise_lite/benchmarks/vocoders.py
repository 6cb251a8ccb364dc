"""Vocoder benchmark: ``python -m tortoise_lite.bench vocoders [--ckpt vocoder.pt] [--threads 2]``.

* Speed: x real time on CPU for ``--seconds`` of audio (default 10 s) with ``--threads`` intra-op threads,
  best of ``--repeats`` runs, for Griffin-Lim (random and phase-gradient start), the (untrained) Vocos-style
  architecture, each ``--ckpt`` and, with ``--external``, randomly initialized HiFi-GAN V1 / BigVGAN-base-sized generators.
* Quality (Griffin-Lim and ``--ckpt`` vocoders): copy-synthesis of held-out eSpeak NG utterances (renderings
  of the ``synthetic_speech`` corpus' held-out prompts, which are never among its training items; the corpus
  settings come from the first ``--ckpt``'s training config, else the vocoder recipe's defaults): mel L1 and
  DTW mel-cepstral distortion of the re-analysed output, and multi-resolution STFT distance, against the
  ground-truth waveform (``tortoise_lite.audio.metrics``). Lower is better for all three.

Figures are printed and written to ``--json`` when given; nothing is asserted.
Full training runs to evaluate: ``python -m tortoise_lite.train +recipe=vocoder_pghi`` (or
``+recipe=vocoder``, the GAN-trained one) then
``python -m tortoise_lite.bench vocoders --ckpt outputs/vocoder_pghi/vocoder.pt``. ``--device cuda`` runs both
measures on a GPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.audio.metrics import mcd_dtw, mel_l1, multi_resolution_stft_distance
from tortoise_lite.vocoders import (
    BigVGANVocoder,
    GriffinLim,
    HiFiGANVocoder,
    Vocoder,
    VocosVocoder,
    load_vocoder,
)

# The vocoder recipe's corpus (conf/recipe/vocoder.yaml: vocoder_recipe.data.corpus).
DEFAULT_CORPUS = {"name": "synthetic_speech", "n_utterances": 300, "seed": 0}


def heldout_utterances(mel_spec: MelSpec, n: int, corpus: dict | None = None) -> list[torch.Tensor]:
    """``n`` held-out eSpeak NG utterances ``(S,)`` at the MelSpec's sample rate (see the module doc)."""
    from tortoise_lite.data.corpora import get_corpus
    from tortoise_lite.training.vocoder_module import heldout_speech

    kwargs = {**DEFAULT_CORPUS, **(corpus or {}), "progress": False}
    c = get_corpus(kwargs.pop("name"), mel=mel_spec, **kwargs)
    return heldout_speech(c, mel_spec, n)


def training_corpus(ckpt: str | Path) -> dict | None:
    """The ``data.corpus`` settings a trained vocoder checkpoint was trained with (None if unknown)."""
    raw = torch.load(ckpt, map_location="cpu", weights_only=True) if Path(ckpt).is_file() else {}
    config = raw.get("config") if isinstance(raw, dict) else None
    corpus = ((config or {}).get("data") or {}).get("corpus")
    return dict(corpus) if isinstance(corpus, dict) else None


def synchronize() -> None:
    """Wait for queued GPU work (no-op on CPU), so wall-clock timings include it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def vocoder_device(vocoder: Vocoder) -> torch.device:
    return next((t.device for t in [*vocoder.parameters(), *vocoder.buffers()]), torch.device("cpu"))


@torch.inference_mode()
def speed(vocoder: Vocoder, seconds: float, repeats: int) -> float:
    """x real time: ``seconds`` of audio / best wall time to vocode it (on the vocoder's device)."""
    ms, device = vocoder.mel_spec, vocoder_device(vocoder)
    frames = int(seconds / ms.frame_seconds)
    mel = torch.randn(1, ms.n_mels, frames, device=device) - 5.0
    vocoder.synthesize(mel[..., : max(8, frames // 10)])  # warm-up (allocator, kernels)
    vocoder.synthesize(mel)
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        vocoder.synthesize(mel)
        synchronize()
        best = min(best, time.perf_counter() - t0)
    return seconds / best


@torch.inference_mode()
def quality(vocoder: Vocoder, utterances: list[torch.Tensor]) -> dict[str, float]:
    ms = vocoder.mel_spec
    scores = {"mel_l1": 0.0, "mcd_db": 0.0, "mrstft": 0.0}
    for wav in utterances:
        wav = wav[: wav.shape[-1] // ms.hop * ms.hop]
        out = vocoder(ms(wav).to(vocoder_device(vocoder)))[0].float().cpu()
        scores["mel_l1"] += mel_l1(ms, wav, out)
        scores["mcd_db"] += mcd_dtw(ms, wav, out)
        scores["mrstft"] += multi_resolution_stft_distance(wav, out)
    return {k: v / len(utterances) for k, v in scores.items()}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench vocoders", description=__doc__.splitlines()[0]
    )
    p.add_argument("--ckpt", action="append", default=[], help="trained vocoder checkpoint(s) to evaluate")
    p.add_argument(
        "--mel", default="hifigan_22k_80", help="MelSpec preset for Griffin-Lim and the untrained model"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (speed and quality run there)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--heldout", type=int, default=4, help="held-out utterances for the quality figures")
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument(
        "--external", action="store_true", help="also time HiFi-GAN V1 / BigVGAN-base sized generators"
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    ms = MelSpec.preset(args.mel)
    entries: list[tuple[str, Vocoder, bool]] = [
        (f"griffin_lim({args.gl_iters} it)", GriffinLim(ms, n_iter=args.gl_iters), True),
        (
            f"griffin_lim({args.gl_iters} it, pghi start)",
            GriffinLim(ms, n_iter=args.gl_iters, init="pghi"),
            True,
        ),
        ("vocos-style (untrained, speed only)", VocosVocoder(ms).eval(), False),
    ]
    for ckpt in args.ckpt:
        entries.append((f"trained {ckpt}", load_vocoder(ckpt), True))
    if args.external:
        entries.append(("hifigan V1 size (random)", HiFiGANVocoder(ms).eval(), False))
        big = MelSpec.preset("bigvgan_24k_100")
        entries.append(
            ("bigvgan base size (random)", BigVGANVocoder(big, upsample_initial_channel=512).eval(), False)
        )

    corpus = next((c for c in map(training_corpus, args.ckpt) if c), None)
    utterances: dict[MelSpec, list[torch.Tensor]] = {}
    results = []
    where = f"CPU, {args.threads} threads" if args.device == "cpu" else args.device
    print(f"{where}, {args.seconds:g} s of audio; quality on {args.heldout} held-out utterances")
    print(f"{'vocoder':45s} {'x real time':>12s} {'mel L1':>8s} {'MCD dB':>8s} {'MR-STFT':>8s}")
    for name, vocoder, with_quality in entries:
        vocoder.to(args.device)
        row = {"vocoder": name, "x_real_time": speed(vocoder, args.seconds, args.repeats)}
        if with_quality:
            if vocoder.mel_spec not in utterances:
                utterances[vocoder.mel_spec] = heldout_utterances(vocoder.mel_spec, args.heldout, corpus)
            row.update(quality(vocoder, utterances[vocoder.mel_spec]))
        results.append(row)
        q = [f"{row[k]:8.3f}" if k in row else f"{'-':>8s}" for k in ("mel_l1", "mcd_db", "mrstft")]
        print(f"{name:45s} {row['x_real_time']:12.1f} {' '.join(q)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"device": args.device, "threads": args.threads, "seconds": args.seconds, "results": results},
                indent=2,
            )
        )
    return 0
