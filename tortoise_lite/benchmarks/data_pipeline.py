"""Data pipeline throughput: corpus generation, prepare (mel cache + stats), one loader epoch.

``python -m tortoise_lite.bench data_pipeline [--corpus synthetic_speech|tones] [--n 300] [--batch-size 16]``
Generates into a temporary cache (nothing is reused), prints seconds and items/s for each stage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.corpora import get_corpus
from tortoise_lite.data.dataset import MelCollate, MelDataset
from tortoise_lite.data.preparation import prepare_dataset
from tortoise_lite.data.sampler import LengthBucketBatchSampler
from tortoise_lite.text.tokenizers import NoteTokenizer, PhonemeTokenizer


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench data_pipeline")
    ap.add_argument("--corpus", default="synthetic_speech", choices=["synthetic_speech", "tones"])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--mel", default="hifigan_22k_80")
    args = ap.parse_args(argv)
    mel = MelSpec.preset(args.mel)
    size_key = "n_utterances" if args.corpus == "synthetic_speech" else "n_sequences"
    tokenizer = PhonemeTokenizer() if args.corpus == "synthetic_speech" else NoteTokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        corpus = get_corpus(args.corpus, mel=mel, cache_dir=tmp, progress=False, **{size_key: args.n})
        t1 = time.perf_counter()
        prepared = prepare_dataset(corpus.items(), mel, tokenizer, corpus.root / "prepared", progress=False)
        t2 = time.perf_counter()
        ds = MelDataset(prepared)
        sampler = LengthBucketBatchSampler(ds.lengths, batch_size=args.batch_size)
        collate = MelCollate(mel.log_floor)
        frames = padded = 0
        for idx in sampler:
            b = collate([ds[i] for i in idx])
            frames += int(b.mel_lengths.sum())
            padded += b.mel.shape[0] * b.mel.shape[-1]
        t3 = time.perf_counter()
    audio_s = frames * mel.frame_seconds
    out = {
        "corpus": args.corpus,
        "items": args.n,
        "audio_seconds": round(audio_s, 1),
        "generate_s": round(t1 - t0, 2),
        "prepare_s": round(t2 - t1, 2),
        "epoch_s": round(t3 - t2, 3),
        "prepare_items_per_s": round(args.n / (t2 - t1), 1),
        "padding_fraction": round(1 - frames / max(padded, 1), 4),
    }
    print(json.dumps(out, indent=1))
    return 0
