"""``synthetic_speech``: eSpeak NG utterances with exact per-phoneme durations.

Prompts come from a built-in generator (digit strings and short sentences over a built-in word list).
Each prompt is spoken by one of several voices (``en-us`` and its timbre variants ``+f3``, ``+m3``...:
the same phoneme inventory as the phoneme tokenizer's ``en-us`` voice, so the durations align token by
token), at a rate and pitch drawn from the configured lists. Audio is resampled from eSpeak's 22050 Hz
to the MelSpec's rate; the durations (frames per phoneme-tokenizer token, summing to the mel length)
come from eSpeak's phoneme events and are saved as ``durations/<id>.npy``.

Token alignment rule: each phoneme event matches the next code points of the tokenizer's IPA; its
samples are shared evenly by its code points except stress marks (0 frames). Pauses go to the word/
clause boundary token (punctuation first, else space) where they occur; leading silence to the first
token. Frame boundaries are ``round(sample * sr_ratio / hop)``, the last one the mel length.
"""

from __future__ import annotations

import json
import os
import random
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tortoise_lite.audio import MelSpec, save_wav
from tortoise_lite.audio.io import resample
from tortoise_lite.data.cache import atomic_save_npy, atomic_write_json, atomic_write_text
from tortoise_lite.data.corpora.common import Corpus, generate_once
from tortoise_lite.data.manifest import Item, write_jsonl
from tortoise_lite.text import espeak
from tortoise_lite.text.tokenizers import PhonemeTokenizer

GENERATOR_VERSION = 1
DEFAULT_VOICES = ("en-us", "en-us+f3", "en-us+m3", "en-us+f4")
STRESS_MARKS = "ˈˌ"
BOUNDARY = " ,.;:!?"

_DETERMINERS = ["the", "a", "one", "every", "that", "my", "your", "this"]
_ADJECTIVES = [
    "red",
    "small",
    "quiet",
    "bright",
    "old",
    "green",
    "happy",
    "cold",
    "soft",
    "tall",
    "warm",
    "dark",
]
_NOUNS = [
    "cat",
    "river",
    "teacher",
    "window",
    "garden",
    "robot",
    "bird",
    "ship",
    "lamp",
    "farmer",
    "storm",
    "horse",
]
_VERBS = ["sees", "finds", "likes", "paints", "follows", "carries", "hears", "moves", "keeps", "watches"]
_ADVERBS = ["slowly", "today", "again", "quickly", "at night", "in the morning", "outside", "softly"]


class AlignmentError(ValueError):
    """eSpeak's phoneme events do not match the tokenizer's phonemes for the same text."""


def make_prompt(rng: random.Random) -> str:
    """A digit string ("4 0 7 2") or a short sentence from the built-in word list."""
    kind = rng.random()
    if kind < 0.3:
        return " ".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 6)))
    subj = f"{rng.choice(_DETERMINERS)} {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
    obj = f"{rng.choice(_DETERMINERS)} {rng.choice(_NOUNS)}"
    sentence = f"{subj} {rng.choice(_VERBS)} {obj}"
    if kind < 0.6:
        sentence += f" {rng.choice(_ADVERBS)}"
    end = rng.choice([".", ".", "!", "?"])
    if kind > 0.85:
        sentence = f"{rng.choice(['well', 'yes', 'look', 'so'])}, {sentence}"
    return sentence[0].upper() + sentence[1:] + end


def align_events(symbols: Sequence[str], events: Sequence[espeak.PhonemeEvent], n_samples: int) -> np.ndarray:
    """Native-rate samples per token (float64, sums to ``n_samples``) from phoneme events.

    ``symbols``: the phoneme tokenizer's symbols (code points) for the text. Raises ``AlignmentError``.
    """
    per_token = np.zeros(len(symbols), dtype=np.float64)
    if not symbols:
        raise AlignmentError("no tokens to align")
    starts = [e.sample for e in events] + [n_samples]
    j = 0  # next token to match

    def boundary_sink(at: int) -> int:
        """Index of the boundary token at ``at`` (punctuation preferred), or -1."""
        k, first = at, -1
        while k < len(symbols) and symbols[k] in BOUNDARY:
            if symbols[k] != " ":
                return k
            first = k if first < 0 else first
            k += 1
        return first

    lead = events[0].sample if events else n_samples
    per_token[0] += lead
    for idx, ev in enumerate(events):
        span = max(0, starts[idx + 1] - ev.sample)
        name = unicodedata.normalize("NFC", ev.phoneme)
        if not name:  # a pause
            k = boundary_sink(j)
            if k < 0:
                k = j - 1 if j > 0 and symbols[j - 1] in BOUNDARY else max(j - 1, 0)
            per_token[k] += span
            continue
        while j < len(symbols) and symbols[j] in BOUNDARY:
            j += 1
        code = list(name)
        if symbols[j : j + len(code)] != code:
            got = "".join(symbols[j : j + len(code)])
            raise AlignmentError(f"event phoneme {name!r} does not match tokens {got!r} at position {j}")
        voiced = [j + m for m, c in enumerate(code) if c not in STRESS_MARKS] or [j]
        for k in voiced:
            per_token[k] += span / len(voiced)
        j += len(code)
    if any(s not in BOUNDARY for s in symbols[j:]):
        raise AlignmentError(f"tokens {''.join(symbols[j:])!r} have no phoneme event")
    return per_token


def samples_to_frames(per_token: np.ndarray, ratio: float, hop: int, total_frames: int) -> np.ndarray:
    """Samples per token (native rate) -> int frames per token summing exactly to ``total_frames``."""
    cum = np.concatenate([[0.0], np.cumsum(per_token)]) * ratio
    bounds = np.clip(np.round(cum / hop).astype(np.int64), 0, total_frames)
    bounds[-1] = total_frames
    bounds = np.maximum.accumulate(bounds)
    return np.diff(bounds)


def synthetic_speech(
    mel: MelSpec | None = None,
    n_utterances: int = 300,
    seed: int = 0,
    voices: Sequence[str] = DEFAULT_VOICES,
    rates: Sequence[int] = (150, 175, 200),
    pitches: Sequence[int] = (35, 50, 65),
    min_seconds: float = 1.0,
    max_seconds: float = 3.0,
    n_heldout: int = 20,
    phoneme_voice: str = "en-us",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Corpus:
    """Generate (or reuse) the corpus; see the module doc. Returns the ``Corpus``."""
    mel = mel or MelSpec()
    for v in voices:
        if not espeak.voice_exists(v):
            raise ValueError(f"eSpeak NG has no voice {v!r}; available languages: {espeak.list_voices('en')}")
    settings = {
        "version": GENERATOR_VERSION,
        "mel": mel.to_dict(),
        "n_utterances": n_utterances,
        "seed": seed,
        "voices": list(voices),
        "rates": list(rates),
        "pitches": list(pitches),
        "min_seconds": min_seconds,
        "max_seconds": max_seconds,
        "n_heldout": n_heldout,
        "phoneme_voice": phoneme_voice,
    }
    tokenizer = PhonemeTokenizer(voice=phoneme_voice)

    def build(tmp: Path) -> None:
        from tortoise_lite.data.preparation import _progress

        rng = random.Random(seed)
        (tmp / "wavs").mkdir()
        (tmp / "durations").mkdir()
        items: list[Item] = []
        used: set[str] = set()
        attempts = 0
        with _progress(progress) as bar:
            task = bar.add_task("synthetic_speech", total=n_utterances)
            while len(items) < n_utterances:
                attempts += 1
                if attempts > 20 * n_utterances + 100:
                    raise RuntimeError(
                        f"could only make {len(items)} of {n_utterances} utterances within "
                        f"[{min_seconds}, {max_seconds}] s; widen the range or change rates"
                    )
                text = make_prompt(rng)
                voice, rate, pitch = (
                    rng.choice(list(voices)),
                    rng.choice(list(rates)),
                    rng.choice(list(pitches)),
                )
                if text in used:
                    continue
                # Speak exactly what the tokenizer phonemizes (numbers expanded the same way).
                syn = espeak.synthesize(tokenizer.normalize(text), voice, rate, pitch)
                audio = resample(syn.float_audio, syn.sample_rate, mel.sample_rate)
                seconds = len(audio) / mel.sample_rate
                if not min_seconds <= seconds <= max_seconds:
                    continue
                try:
                    per_token = align_events(tokenizer.symbols_of(text), syn.events, len(syn.audio))
                except AlignmentError:
                    continue  # rare eSpeak context effects: draw another prompt (deterministically)
                frames = samples_to_frames(
                    per_token, mel.sample_rate / syn.sample_rate, mel.hop, mel.num_frames(len(audio))
                )
                uid = f"ss{len(items):05d}"
                save_wav(tmp / "wavs" / f"{uid}.wav", audio, mel.sample_rate)
                atomic_save_npy(tmp / "durations" / f"{uid}.npy", frames)
                used.add(text)
                items.append(
                    Item(
                        id=uid,
                        audio=f"wavs/{uid}.wav",
                        text=text,
                        speaker=voice,
                        durations=f"durations/{uid}.npy",
                        duration=round(seconds, 4),
                    )
                )
                bar.advance(task)
        heldout: list[str] = []
        hrng = random.Random(f"heldout-{seed}")
        while len(heldout) < n_heldout:
            p = make_prompt(hrng)
            if p not in used and p not in heldout:
                heldout.append(p)
        write_jsonl(tmp / "manifest.jsonl", items)
        atomic_write_text(tmp / "heldout.txt", "\n".join(heldout) + "\n")
        atomic_write_json(
            tmp / "settings.json", {**settings, "attempts": attempts, "sample_rate": mel.sample_rate}
        )

    return generate_once("synthetic_speech", settings, cache_dir, build)


def describe(corpus: Corpus) -> str:
    s = corpus.settings
    return json.dumps({k: s[k] for k in ("n_utterances", "voices", "rates", "pitches", "seed")})
