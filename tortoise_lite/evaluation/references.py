"""Reference renderings of a recipe's held-out prompts, made the way its corpus makes training data.

* ``synthetic_speech``: eSpeak NG speaks the prompt (first corpus voice, middle rate and pitch); the
  phoneme events give exact frames per phoneme-tokenizer token (the corpus' alignment rule).
* ``tones``: the notes rendered as harmonic tones with the corpus' renderer at a fixed note length; the
  note boundaries are exact, so generating with the reference durations makes pitch checkable per note.

A reference is a waveform at the MelSpec's rate, its log-mel, and when known the durations (frames per
token, summing to the mel length) and the note list ``(start_s, end_s, hz)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tortoise_lite.audio.mel import MelSpec

KINDS = ("synthetic_speech", "synthetic_voices", "tones")
#: corpora of eSpeak speech: scored with the speech metrics (WER/CER, MCD, F0)
SPEECH_KINDS = ("synthetic_speech", "synthetic_voices")
CORPUS_SOURCE_TARGET = "tortoise_lite.data.sources.CorpusSource"
#: amplitude of the tones references (the corpus draws 0.3-0.8 per sequence)
TONES_AMPLITUDE = 0.5
#: timbre of the tones references (harmonics give pyin a clear fundamental)
TONES_TIMBRE = "flute"


class EvaluationDataError(ValueError):
    """The checkpoint's recipe has no held-out prompts or references this evaluation can use."""


@dataclass
class Reference:
    """text; wav (S,) float32; mel (n_mels, T) raw log-mel; durations per token (sum T) or None;
    notes [(start_s, end_s, hz)] (tones) or None; speaker: the speaker (tones: timbre) name rendered, or None."""

    text: str
    wav: np.ndarray
    mel: torch.Tensor
    durations: list[int] | None = None
    notes: list[tuple[float, float, float]] | None = None
    speaker: str | None = None


def corpus_source_settings(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(corpus name, generator settings)`` from a checkpoint's resolved training config.

    Only the embedded corpora have held-out prompts and references; other data raises
    :class:`EvaluationDataError` telling the user what to do.
    """
    data = config.get("data") or {}
    source = data.get("source") if isinstance(data, Mapping) else None
    if not isinstance(source, Mapping) or source.get("_target_") != CORPUS_SOURCE_TARGET:
        raise EvaluationDataError(
            "the checkpoint was not trained on an embedded corpus (data.source is not CorpusSource): "
            "evaluation needs held-out prompts with references; train with +recipe=speech or +recipe=tones"
        )
    name = source.get("name")
    if name not in KINDS:
        raise EvaluationDataError(f"data.source.name={name!r}: evaluation knows the corpora {KINDS}")
    settings = {k: v for k, v in source.items() if k not in ("_target_", "name")}
    return str(name), settings


def heldout_prompts(config: Mapping[str, Any], mel_spec: MelSpec) -> tuple[str, list[str], dict[str, Any]]:
    """``(corpus name, held-out prompts, corpus settings)`` of the recipe (generates the corpus if the
    cache lacks it: the prompts are drawn so that none was used for training)."""
    from tortoise_lite.data.sources import CorpusSource

    name, settings = corpus_source_settings(config)
    source = CorpusSource(name, **{**settings, "progress": False})
    prompts = source.heldout_prompts(mel_spec)
    if not prompts:
        raise EvaluationDataError(f"corpus {name} has no held-out prompts (n_heldout=0?)")
    return name, prompts, dict(source.corpus(mel_spec).settings)


def corpus_recognizer(config: Mapping[str, Any], mel_spec: MelSpec) -> Any:
    """The intelligibility recognizer of a checkpoint's embedded speech corpus: its vocabulary and bigram
    language model come from the corpus' training transcripts (plus the held-out prompts' words)."""
    from tortoise_lite.data.sources import CorpusSource
    from tortoise_lite.evaluation.intelligibility import Recognizer

    name, settings = corpus_source_settings(config)
    source = CorpusSource(name, **{**settings, "progress": False})
    texts = [item.text for item in source.items(mel_spec)]
    return Recognizer.for_texts(texts, extra_vocabulary=source.heldout_prompts(mel_spec))


def speech_reference(
    text: str, mel_spec: MelSpec, tokenizer: Any, voice: str = "en-us", rate: int = 175, pitch: int = 50
) -> Reference:
    """eSpeak rendering of ``text`` resampled to the MelSpec's rate, with exact token durations when the
    phoneme events align with the tokenizer (``durations=None`` otherwise)."""
    from tortoise_lite.audio.io import resample
    from tortoise_lite.data.corpora.synthetic_speech import AlignmentError, align_events, samples_to_frames
    from tortoise_lite.text import espeak

    spoken = tokenizer.normalize(text) if hasattr(tokenizer, "normalize") else text
    syn = espeak.synthesize(spoken, voice, rate, pitch)
    wav = resample(syn.float_audio, syn.sample_rate, mel_spec.sample_rate).astype(np.float32)
    n_frames = mel_spec.num_frames(len(wav))
    durations = None
    if getattr(tokenizer, "kind", None) == "phonemes":
        try:
            per_token = align_events(tokenizer.symbols_of(text), syn.events, len(syn.audio))
            frames = samples_to_frames(
                per_token, mel_spec.sample_rate / syn.sample_rate, mel_spec.hop, n_frames
            )
            durations = [int(f) for f in frames]
        except AlignmentError:
            durations = None  # rare eSpeak context effects: the reference is still usable with DTW metrics
    mel = mel_spec(torch.from_numpy(wav))
    return Reference(text=text, wav=wav, mel=mel, durations=durations)


def tones_reference(text: str, mel_spec: MelSpec, tokenizer: Any, note_seconds: float) -> Reference:
    """The notes of ``text`` rendered with the tones corpus' renderer, ``note_seconds`` each."""
    from tortoise_lite.data.corpora.synthetic_speech import samples_to_frames
    from tortoise_lite.data.corpora.tones import TIMBRES, midi_hz, render_note
    from tortoise_lite.text.tokenizers import NOTE_REST, note_to_midi

    sr = mel_spec.sample_rate
    symbols = tokenizer.symbols_of(text)
    n = int(round(note_seconds * sr))
    lengths = [n] * len(symbols)
    parts = [
        render_note(
            None if sym == NOTE_REST else note_to_midi(sym), m, sr, TIMBRES[TONES_TIMBRE], TONES_AMPLITUDE
        )
        for sym, m in zip(symbols, lengths)
    ]
    wav = np.concatenate(parts).astype(np.float32)
    n_frames = mel_spec.num_frames(len(wav))
    frames = samples_to_frames(np.asarray(lengths, dtype=np.float64), 1.0, mel_spec.hop, n_frames)
    # note times from the frame boundaries the model is given, so pitch windows match generated audio
    bounds = np.concatenate([[0], np.cumsum(frames)]) * mel_spec.frame_seconds
    notes = []
    for k, sym in enumerate(symbols):
        if sym != NOTE_REST:
            notes.append((float(bounds[k]), float(bounds[k + 1]), midi_hz(note_to_midi(sym))))
    mel = mel_spec(torch.from_numpy(wav))
    durations = [int(f) for f in frames]
    return Reference(text=text, wav=wav, mel=mel, durations=durations, notes=notes, speaker=TONES_TIMBRE)


def build_references(
    kind: str, prompts: Sequence[str], mel_spec: MelSpec, tokenizer: Any, settings: Mapping[str, Any]
) -> list[Reference]:
    """References for ``prompts`` of corpus ``kind`` (its ``settings`` choose voice, rate, note length)."""
    if kind == "synthetic_speech":
        voices = list(settings.get("voices") or ["en-us"])
        rates = sorted(settings.get("rates") or [175])
        pitches = sorted(settings.get("pitches") or [50])
        voice, rate, pitch = voices[0], rates[len(rates) // 2], pitches[len(pitches) // 2]
        refs = [speech_reference(p, mel_spec, tokenizer, voice, int(rate), int(pitch)) for p in prompts]
        for r in refs:
            r.speaker = voice  # a model with a speaker table is asked for the reference's voice
        return refs
    if kind == "synthetic_voices":
        # the first training voice at its own base rate and pitch (a voice model without a voice speaks in
        # its learned average voice: MCD/F0 against one voice are then only indicative; WER is what counts)
        table = dict(settings.get("voice_table") or {})
        trained = [v for v, row in table.items() if not row.get("heldout")]
        if not trained:
            raise EvaluationDataError("the synthetic_voices corpus settings have no voice_table")
        voice = trained[0]
        rate, pitch = table[voice]["rate"], table[voice]["pitch"]
        refs = [speech_reference(p, mel_spec, tokenizer, voice, int(rate), int(pitch)) for p in prompts]
        for r in refs:
            r.speaker = voice
        return refs
    if kind == "tones":
        lo, hi = settings.get("note_seconds") or (0.15, 0.45)
        return [tones_reference(p, mel_spec, tokenizer, 0.5 * (float(lo) + float(hi))) for p in prompts]
    raise EvaluationDataError(f"no references for corpus {kind!r}; known: {KINDS}")
