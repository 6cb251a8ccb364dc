"""``tones``: note sequences ("C4 E4 G4") rendered as harmonic tones with envelopes.

Text = the note names, tokenized by ``NoteTokenizer`` (one token per note, "R" = rest), so the note
boundaries give exact durations (frames per note, summing to the mel length). Each item uses one of a
few timbres (harmonic amplitude profiles), stored as its ``speaker``. Pitch is checkable with
``librosa.pyin``: the fundamental of note ``n`` is ``440 * 2 ** ((midi(n) - 69) / 12)`` Hz.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tortoise_lite.audio import MelSpec, save_wav
from tortoise_lite.data.cache import atomic_save_npy, atomic_write_json, atomic_write_text
from tortoise_lite.data.corpora.common import Corpus, generate_once
from tortoise_lite.data.corpora.synthetic_speech import samples_to_frames
from tortoise_lite.data.manifest import Item, write_jsonl
from tortoise_lite.text.tokenizers import NOTE_REST, midi_to_note, note_to_midi

GENERATOR_VERSION = 1
A4_HZ = 440.0
A4_MIDI = 69

# Relative amplitudes of harmonics 1..n for each timbre.
TIMBRES: dict[str, tuple[float, ...]] = {
    "sine": (1.0,),
    "flute": (1.0, 0.4, 0.15, 0.05),
    "reed": (1.0, 0.8, 0.6, 0.45, 0.3, 0.2),
    "bell": (1.0, 0.0, 0.5, 0.0, 0.3, 0.0, 0.15),
}


def midi_hz(midi: int) -> float:
    return A4_HZ * 2.0 ** ((midi - A4_MIDI) / 12.0)


def render_note(midi: int | None, n: int, sr: int, harmonics: Sequence[float], amp: float) -> np.ndarray:
    """One note of ``n`` samples (silence for a rest) with attack/decay/release envelope."""
    if midi is None:
        return np.zeros(n, dtype=np.float32)
    t = np.arange(n) / sr
    f0 = midi_hz(midi)
    wave = np.zeros(n)
    for k, a in enumerate(harmonics, start=1):
        if a and k * f0 < sr / 2:
            wave += a * np.sin(2 * np.pi * k * f0 * t)
    wave /= max(sum(abs(a) for a in harmonics), 1e-9)
    # Envelope in seconds (not samples) so it is the same at every sample rate.
    attack, release = min(0.02, n / sr / 4), min(0.05, n / sr / 4)
    env = np.ones(n)
    na, nr = int(attack * sr), int(release * sr)
    if na:
        env[:na] = np.linspace(0, 1, na)
    env *= np.exp(-1.5 * t)  # gentle decay
    if nr:
        env[-nr:] *= np.linspace(1, 0, nr)
    return (amp * wave * env).astype(np.float32)


def tones(
    mel: MelSpec | None = None,
    n_sequences: int = 200,
    seed: int = 0,
    min_notes: int = 3,
    max_notes: int = 6,
    low: str = "C3",
    high: str = "C6",
    note_seconds: tuple[float, float] = (0.15, 0.45),
    rest_probability: float = 0.1,
    timbres: Sequence[str] = tuple(TIMBRES),
    n_heldout: int = 20,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Corpus:
    """Generate (or reuse) the tones corpus; see the module doc."""
    mel = mel or MelSpec()
    unknown = [t for t in timbres if t not in TIMBRES]
    if unknown:
        raise ValueError(f"unknown timbres {unknown}; choose from {sorted(TIMBRES)}")
    lo, hi = note_to_midi(low), note_to_midi(high)
    if lo >= hi:
        raise ValueError(f"low={low} must be below high={high}")
    settings = {
        "version": GENERATOR_VERSION,
        "mel": mel.to_dict(),
        "n_sequences": n_sequences,
        "seed": seed,
        "notes": [min_notes, max_notes],
        "range": [low, high],
        "note_seconds": list(note_seconds),
        "rest_probability": rest_probability,
        "timbres": list(timbres),
        "n_heldout": n_heldout,
    }

    def sequence(rng: random.Random) -> list[str]:
        notes = []
        for i in range(rng.randint(min_notes, max_notes)):
            if 0 < i and rng.random() < rest_probability and notes[-1] != NOTE_REST:
                notes.append(NOTE_REST)
            else:
                notes.append(midi_to_note(rng.randint(lo, hi)))
        if notes[-1] == NOTE_REST:
            notes[-1] = midi_to_note(rng.randint(lo, hi))
        return notes

    def build(tmp: Path) -> None:
        from tortoise_lite.data.preparation import _progress

        rng = random.Random(seed)
        (tmp / "wavs").mkdir()
        (tmp / "durations").mkdir()
        items, used = [], set()
        sr = mel.sample_rate
        with _progress(progress) as bar:
            task = bar.add_task("tones", total=n_sequences)
            while len(items) < n_sequences:
                notes = sequence(rng)
                timbre = rng.choice(list(timbres))
                amp = rng.uniform(0.3, 0.8)
                lengths = [int(rng.uniform(*note_seconds) * sr) for _ in notes]
                text = " ".join(notes)
                if text in used:
                    continue
                used.add(text)
                audio = np.concatenate(
                    [
                        render_note(None if n == NOTE_REST else note_to_midi(n), m, sr, TIMBRES[timbre], amp)
                        for n, m in zip(notes, lengths)
                    ]
                )
                frames = samples_to_frames(
                    np.array(lengths, dtype=np.float64), 1.0, mel.hop, mel.num_frames(len(audio))
                )
                uid = f"tn{len(items):05d}"
                save_wav(tmp / "wavs" / f"{uid}.wav", audio, sr)
                atomic_save_npy(tmp / "durations" / f"{uid}.npy", frames)
                items.append(
                    Item(
                        uid,
                        f"wavs/{uid}.wav",
                        text,
                        timbre,
                        f"durations/{uid}.npy",
                        round(len(audio) / sr, 4),
                    )
                )
                bar.advance(task)
        hrng = random.Random(f"heldout-{seed}")
        heldout: list[str] = []
        while len(heldout) < n_heldout:
            p = " ".join(sequence(hrng))
            if p not in used and p not in heldout:
                heldout.append(p)
        write_jsonl(tmp / "manifest.jsonl", items)
        atomic_write_text(tmp / "heldout.txt", "\n".join(heldout) + "\n")
        atomic_write_json(tmp / "settings.json", {**settings, "sample_rate": sr})

    return generate_once("tones", settings, cache_dir, build)
