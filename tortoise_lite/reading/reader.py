"""Long-form reading: a passage -> segments -> batched generation -> one voice, joined with pauses.

    from tortoise_lite.api import TextToSpeech

    tts = TextToSpeech.from_checkpoint("outputs/speech/checkpoints/last.ckpt")
    result = tts.read(open("chapter.txt").read(), out_dir="chapter/", preset="fast", seed=0)
    result.combined          # float32 numpy (samples,), pauses included
    tts.read(text, out_dir="chapter/", regenerate=[3, 7])   # new takes of segments 3 and 7 only
    for chunk in tts.stream(text, seed=0):                   # sentence by sentence, first one early
        play(chunk.wav)

**Seeds.** Segment ``i`` (take ``t``, candidate ``k``) draws its noise from
``segment_seed(seed, i, t, k)`` alone: its audio does not depend on the other segments, on the batch it
sits in (up to float rounding of batched matrix products) or on whether it was streamed. A first reading
is take 0; ``regenerate=[i, ...]`` makes the next take of those segments and reuses every other segment's
file from ``out_dir`` unchanged (bit for bit), so the combined file differs only where asked.

**Batches.** Up to ``batch_size`` items (segments x candidates) go through the model in one batch, in text
order, so time grows linearly with the length of the text and memory is bounded by one batch; the first
batch holds ``first_batch`` segments so that streaming starts early (the same schedule is used whether
streamed or not, so both give identical audio).

**Candidates.** ``candidates=K`` generates K takes of every segment in the same batch and keeps the one
with the lowest scorer error (:mod:`tortoise_lite.reading.scoring`: the offline recognizer's word error rate
by default, any ``callable(wav, sample_rate, text) -> error`` otherwise).

**Files** (``out_dir``): ``segment_0000.wav`` ... (float32 wav, one per segment, no pause), ``combined.wav``
(all segments with their pauses) and ``manifest.json`` (per segment: index, sentence, file, seconds,
pause, seed, take, candidate errors; plus the settings and the normalized text).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tortoise_lite.reading.scoring import best_candidate, build_scorer
from tortoise_lite.reading.text import ReadingPlan, ReadingTextError, Segment, plan_reading

MANIFEST = "manifest.json"
COMBINED = "combined.wav"
MANIFEST_VERSION = 1
PRESET_KEYS = ("sampler", "steps", "guidance", "candidates")


# ---------------------------------------------------------------------------------------------------
# presets and seeds
# ---------------------------------------------------------------------------------------------------
def preset_names() -> list[str]:
    from tortoise_lite.paths import config_dir

    return sorted(p.stem for p in (config_dir() / "preset").glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """``{"sampler", "steps", "guidance", "candidates"}`` of ``conf/preset/<name>.yaml``."""
    from omegaconf import OmegaConf

    from tortoise_lite.paths import config_dir

    path = config_dir() / "preset" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return {k: node.get(k) for k in PRESET_KEYS}


def segment_seed(seed: int, index: int, take: int = 0, candidate: int = 0) -> int:
    """The seed of one take of one segment: a function of these four numbers only."""
    state = np.random.SeedSequence(entropy=[int(seed), int(index), int(take), int(candidate)])
    return int(state.generate_state(1, np.uint64)[0] & ((1 << 62) - 1))


# ---------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------
@dataclass
class SegmentAudio:
    """One generated (or reused) segment: ``wav`` float32 ``(samples,)`` in [-1, 1], without its pause."""

    segment: Segment
    wav: np.ndarray
    seed: int
    take: int
    errors: list[float] | None = None  # scorer error of every candidate (None: one candidate)
    chosen: int = 0
    reused: bool = False


@dataclass
class StreamChunk:
    """What :meth:`Reader.stream` yields: segment ``index``'s audio followed by its pause.

    ``wav`` float32 ``(samples,)``; ``speech_samples``: samples before the pause; ``ready_seconds``: time
    from the start of the stream until this chunk was ready.
    """

    index: int
    text: str
    wav: np.ndarray
    sample_rate: int
    speech_samples: int
    ready_seconds: float
    audio: SegmentAudio | None = None


@dataclass
class ReadingResult:
    """What :meth:`Reader.read` returns."""

    plan: ReadingPlan
    segments: list[SegmentAudio]
    sample_rate: int
    seed: int
    settings: dict[str, Any]
    wall_seconds: float
    first_audio_seconds: float
    generated: list[int]
    out_dir: Path | None = None
    manifest: list[dict[str, Any]] = field(default_factory=list)

    def pause_samples(self, k: int) -> int:
        return int(round(self.segments[k].segment.pause * self.sample_rate))

    @property
    def combined(self) -> np.ndarray:
        """Every segment followed by its pause (the last one has none), float32."""
        parts = []
        for k, s in enumerate(self.segments):
            parts += [s.wav, np.zeros(self.pause_samples(k), np.float32)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    @property
    def audio_seconds(self) -> float:
        n = sum(s.wav.size + self.pause_samples(k) for k, s in enumerate(self.segments))
        return n / self.sample_rate

    @property
    def rtf(self) -> float:
        """Wall time of the call / seconds of combined audio."""
        return self.wall_seconds / max(self.audio_seconds, 1e-9)


# ---------------------------------------------------------------------------------------------------
# the reader
# ---------------------------------------------------------------------------------------------------
def _parse_indices(regenerate: Any) -> list[int]:
    if regenerate is None or regenerate == "" or regenerate == []:
        return []
    if isinstance(regenerate, int):
        return [int(regenerate)]
    if isinstance(regenerate, str):
        parts = [p for p in regenerate.replace(" ", "").strip("[]").split(",") if p]
        try:
            return sorted({int(p) for p in parts})
        except ValueError:
            raise ValueError(
                f"regenerate={regenerate!r}: give segment numbers from the manifest, e.g. regenerate=3,7"
            ) from None
    return sorted({int(i) for i in regenerate})


def _save_float_wav(path: Path, wav: np.ndarray, sample_rate: int) -> Path:
    from tortoise_lite.audio.io import save_wav

    return save_wav(path, wav, sample_rate, subtype="FLOAT")


class Reader:
    """Reads passages with one model, one voice and one seed schedule (see the module docstring).

    Args:
        tts: a :class:`~tortoise_lite.api.TextToSpeech`.
        preset: ``ultra_fast`` | ``fast`` | ``standard`` | ``high_quality`` (``conf/preset``): fills
            sampler, steps, guidance and candidates that are not given explicitly.
        sampler / steps / guidance: as in ``TextToSpeech.synthesize`` (None: the preset's, else the
            checkpoint's sampler at its steps, guidance 1).
        candidates: takes per segment; the scorer's best is kept (None: the preset's, else 1).
        scorer: ``"recognizer"`` (default), or ``callable(wav, sample_rate, text) -> error``.
        seed: the base of every segment's seed (None: a fresh one, recorded in the result and manifest).
        speaker / length_scale / temperature: as in ``synthesize``; one voice for the whole reading (a
            multi-speaker model reads with its first speaker unless told otherwise).
        voice / voice_guidance: as in ``synthesize`` for voice models (resolved once: one voice throughout).
        batch_size: items (segments x candidates) per model batch. first_batch: segments in the first one.
        max_chars / pauses / unknown: text splitting and checking (:func:`plan_reading`).
        progress: a rich progress bar on the terminal.
    """

    def __init__(
        self,
        tts: Any,
        preset: str | None = None,
        sampler: Any = None,
        steps: int | None = None,
        guidance: float | None = None,
        candidates: int | None = None,
        scorer: Any = None,
        seed: int | None = 0,
        speaker: int | str | None = None,
        voice: Any = None,
        voice_guidance: float | None = None,
        length_scale: float = 1.0,
        temperature: float | None = None,
        batch_size: int = 8,
        first_batch: int = 1,
        max_chars: int = 100,
        pauses: Mapping[str, float] | None = None,
        unknown: str = "error",
        progress: bool = False,
    ) -> None:
        from tortoise_lite.api import build_sampler

        self.tts = tts
        chosen = load_preset(preset) if preset else {}
        self.preset = preset
        sampler = sampler if sampler is not None else chosen.get("sampler")
        self.steps = int(steps) if steps is not None else chosen.get("steps")
        self.guidance = float(guidance if guidance is not None else chosen.get("guidance") or 1.0)
        self.candidates = int(candidates if candidates is not None else chosen.get("candidates") or 1)
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if int(batch_size) < 1 or int(first_batch) < 1:
            raise ValueError(f"batch_size and first_batch must be >= 1, got {batch_size} and {first_batch}")
        self.sampler = build_sampler(sampler, getattr(tts.model, "sampler", None))
        self.scorer = build_scorer(scorer) if self.candidates > 1 else None
        self.seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        if speaker is None and int(getattr(tts.model, "n_speakers", 0) or 0) > 0:
            speaker = (
                0  # one voice for the whole reading: the first trained speaker, not the "any speaker" mix
            )
        self.speaker = tts.speaker_id(speaker) if speaker is not None else None
        self.voice = tts.resolve_voice(voice) if voice is not None else None
        self.voice_guidance = voice_guidance
        self.length_scale = float(length_scale)
        self.temperature = temperature
        self.batch_size = int(batch_size)
        self.first_batch = int(first_batch)
        self.max_chars = int(max_chars)
        self.pauses = dict(pauses or {})
        self.unknown = unknown
        self.progress = bool(progress)

    # ---- settings --------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.tts.sample_rate)

    def settings(self) -> dict[str, Any]:
        info = getattr(self.tts, "info", None)
        return {
            "checkpoint": str(getattr(info, "path", "")) or None,
            "preset": self.preset,
            "sampler": str(getattr(self.sampler, "name", type(self.sampler).__name__)),
            "steps": int(self.steps or getattr(self.sampler, "steps", 0)),
            "guidance": self.guidance,
            "candidates": self.candidates,
            "scorer": getattr(self.scorer, "name", type(self.scorer).__name__) if self.scorer else None,
            "seed": self.seed,
            "speaker": self.speaker,
            "speaker_name": (
                self.tts.speakers[self.speaker]
                if self.speaker is not None and self.speaker < len(self.tts.speakers)
                else None
            ),  # fmt: skip
            **({"voice": self.voice.description} if self.voice is not None else {}),
            **({"voice_guidance": self.voice_guidance} if self.voice_guidance is not None else {}),
            "length_scale": self.length_scale,
            "temperature": self.temperature,
            "batch_size": self.batch_size,
            "first_batch": self.first_batch,
            "max_chars": self.max_chars,
            "pauses": self.pauses,
            "unknown": self.unknown,
        }

    def plan(self, text: str) -> ReadingPlan:
        """Normalize, split and check ``text`` (no model compute)."""
        return plan_reading(
            text, self.tts.tokenizer, max_chars=self.max_chars, pauses=self.pauses, unknown=self.unknown
        )

    # ---- generation ------------------------------------------------------------------------------
    def _batches(self, segments: Sequence[Segment]) -> Iterator[list[Segment]]:
        per = max(1, self.batch_size // self.candidates)
        k, size = 0, min(self.first_batch, per)
        while k < len(segments):
            yield list(segments[k : k + size])
            k += size
            size = per

    def render(
        self,
        segments: Sequence[Segment],
        takes: Mapping[int, int] | None = None,
        on_segment: Callable | None = None,
    ) -> Iterator[SegmentAudio]:
        """Generate ``segments`` in order (batched), yielding each :class:`SegmentAudio` when ready."""
        takes = dict(takes or {})
        if self.scorer is not None and hasattr(self.scorer, "prepare"):
            self.scorer.prepare([s.text for s in segments])
        K = self.candidates
        for batch in self._batches(segments):
            texts = [s.text for s in batch for _ in range(K)]
            seeds = [
                segment_seed(self.seed, s.index, takes.get(s.index, 0), k) for s in batch for k in range(K)
            ]
            mels, _ = self.tts.generate_mels(
                texts,
                sampler=self.sampler,
                steps=self.steps,
                guidance=self.guidance,
                seed=seeds,
                length_scale=self.length_scale,
                temperature=self.temperature,
                batch_size=len(texts),
                speaker=self.speaker,
                **({"voice": self.voice} if self.voice is not None else {}),
                **({"voice_guidance": self.voice_guidance} if self.voice_guidance is not None else {}),
            )
            wavs = [np.clip(w.numpy().astype(np.float32), -1.0, 1.0) for w in self.tts.vocode(mels)]
            for j, seg in enumerate(batch):
                cands = wavs[j * K : (j + 1) * K]
                errors, chosen = None, 0
                if K > 1:
                    errors = [float(self.scorer(w, self.sample_rate, seg.text)) for w in cands]
                    chosen = best_candidate(errors)
                take = takes.get(seg.index, 0)
                yield SegmentAudio(seg, cands[chosen], segment_seed(self.seed, seg.index, take, chosen), take,
                                   errors, chosen)  # fmt: skip

    def _progress(self, total: int, what: str):
        if not self.progress:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[audio]:.1f} s audio"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[text]}"),
        )
        bar.start()
        bar.add_task(what, total=total, audio=0.0, text="")
        return bar

    def stream(self, text: str | ReadingPlan) -> Iterator[StreamChunk]:
        """Yield every segment with its pause as soon as its batch is generated (the first batch holds
        ``first_batch`` segments). The chunks concatenated are :attr:`ReadingResult.combined`."""
        plan = text if isinstance(text, ReadingPlan) else self.plan(text)
        t0 = time.perf_counter()
        for audio in self.render(plan.segments):
            yield self._chunk(audio, t0)

    def _chunk(self, audio: SegmentAudio, t0: float) -> StreamChunk:
        pause = np.zeros(int(round(audio.segment.pause * self.sample_rate)), np.float32)
        return StreamChunk(
            index=audio.segment.index,
            text=audio.segment.text,
            wav=np.concatenate([audio.wav, pause]),
            sample_rate=self.sample_rate,
            speech_samples=int(audio.wav.size),
            ready_seconds=time.perf_counter() - t0,
            audio=audio,
        )

    # ---- reading with files ----------------------------------------------------------------------
    def read(
        self,
        text: str | ReadingPlan,
        out_dir: str | os.PathLike | None = None,
        regenerate: Any = None,
        on_chunk: Callable[[StreamChunk], None] | None = None,
        stream_combined: bool = False,
    ) -> ReadingResult:
        """Read a passage; with ``out_dir`` write the segment wavs, ``combined.wav`` and the manifest.

        ``regenerate=[i, ...]`` (needs the ``out_dir`` of an earlier reading of the same text) makes a new
        take of those segments only and reuses the other segments' files. ``on_chunk`` is called with
        every :class:`StreamChunk` as it becomes ready; ``stream_combined`` appends each chunk to
        ``combined.wav`` as it comes (flushed), instead of writing the file at the end.
        """
        t0 = time.perf_counter()
        plan = text if isinstance(text, ReadingPlan) else self.plan(text)
        n = len(plan.segments)
        out = Path(out_dir).expanduser() if out_dir is not None else None
        chosen = _parse_indices(regenerate)
        takes: dict[int, int] = {}
        reused: dict[int, SegmentAudio] = {}
        if chosen:
            if out is None:
                raise ValueError(
                    "regenerate needs out_dir: the folder of the earlier reading (its manifest.json)"
                )
            previous = self._load_previous(out, plan, chosen)
            self.seed = int(previous["seed"])  # the earlier reading's seed schedule, whatever was given now
            for k, row in enumerate(previous["segments"]):
                takes[k] = int(row.get("take", 0)) + (1 if k in chosen else 0)
                if k not in chosen:
                    reused[k] = self._reuse(out, plan.segments[k], row)
        todo = [s for s in plan.segments if s.index not in reused]
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            if not chosen:  # a new reading: segment files of an earlier, longer one would be stale
                for stale in out.glob("segment_*.wav"):
                    if stale.stem[8:].isdigit() and int(stale.stem[8:]) >= n:
                        stale.unlink()
        bar = self._progress(len(todo), "reading" if not chosen else f"regenerating {len(todo)}")
        writer = None
        if out is not None and stream_combined:
            import soundfile as sf

            writer = sf.SoundFile(out / COMBINED, "w", self.sample_rate, 1, subtype="FLOAT", format="WAV")
        results: list[SegmentAudio | None] = [None] * n
        first_audio = None
        rendered = self.render(todo, takes)
        try:
            for k in range(n):
                if k in reused:
                    audio = reused[k]
                else:
                    audio = next(rendered)
                    assert audio.segment.index == k
                    if out is not None:
                        _save_float_wav(out / self._file(k), audio.wav, self.sample_rate)
                    if bar is not None:
                        task = bar.task_ids[0]
                        done = bar.tasks[0].fields["audio"] + audio.wav.size / self.sample_rate
                        bar.update(task, advance=1, audio=done, text=audio.segment.text[:30])
                results[k] = audio
                chunk = self._chunk(audio, t0)
                if first_audio is None:
                    first_audio = chunk.ready_seconds
                if writer is not None:
                    writer.write(chunk.wav)
                    writer.flush()
                if on_chunk is not None:
                    on_chunk(chunk)
        finally:
            if bar is not None:
                bar.stop()
            if writer is not None:
                writer.close()
        result = ReadingResult(
            plan=plan,
            segments=[r for r in results if r is not None],
            sample_rate=self.sample_rate,
            seed=self.seed,
            settings=self.settings(),
            wall_seconds=0.0,
            first_audio_seconds=float(first_audio or 0.0),
            generated=[s.index for s in todo],
            out_dir=out,
        )
        result.manifest = self._manifest_rows(result)
        if out is not None:
            if writer is None:
                _save_float_wav(out / COMBINED, result.combined, self.sample_rate)
            self._write_manifest(out, result)
        result.wall_seconds = time.perf_counter() - t0
        return result

    @staticmethod
    def _file(index: int) -> str:
        return f"segment_{index:04d}.wav"

    def _manifest_rows(self, result: ReadingResult) -> list[dict[str, Any]]:
        rows = []
        for a in result.segments:
            rows.append({
                "index": a.segment.index,
                "sentence": a.segment.text,
                "file": self._file(a.segment.index),
                "seconds": round(a.wav.size / self.sample_rate, 4),
                "pause": a.segment.pause,
                "paragraph": a.segment.paragraph,
                "cut": a.segment.cut,
                "seed": a.seed,
                "take": a.take,
                "candidate": a.chosen,
                "errors": a.errors,
            })  # fmt: skip
        return rows

    def _write_manifest(self, out: Path, result: ReadingResult) -> None:
        from tortoise_lite.data.cache import atomic_write_json

        atomic_write_json(
            out / MANIFEST,
            {
                "version": MANIFEST_VERSION,
                "sample_rate": self.sample_rate,
                "seed": self.seed,
                "settings": result.settings,
                "combined": COMBINED,
                "seconds": round(result.audio_seconds, 4),
                "normalized": result.plan.normalized,
                "warnings": result.plan.warnings,
                "segments": result.manifest,
            },
        )

    def _load_previous(self, out: Path, plan: ReadingPlan, chosen: list[int]) -> dict[str, Any]:
        path = out / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"regenerate: {path} not found; read the text into out_dir={out} first (without regenerate)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data["segments"]
        except (ValueError, KeyError, TypeError) as e:
            raise ReadingTextError(
                f"regenerate: {path} is not a reading manifest ({e}); read the text again"
            ) from e
        if int(data.get("sample_rate", -1)) != self.sample_rate:
            raise ReadingTextError(
                f"regenerate: {path} was made at {data.get('sample_rate')} Hz, this model makes {self.sample_rate} Hz"
            )
        old = [r["sentence"] for r in rows]
        new = plan.texts
        if old != new:
            k = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
            a = old[k] if k < len(old) else "(none)"
            b = new[k] if k < len(new) else "(none)"
            raise ReadingTextError(
                f"regenerate: the text (or max_chars) differs from the reading in {out}: segment {k} was {a!r}, "
                f"now {b!r} ({len(old)} vs {len(new)} segments); read it again into a new out_dir"
            )
        bad = [i for i in chosen if not 0 <= i < len(rows)]
        if bad:
            raise ValueError(
                f"regenerate: segment(s) {bad} do not exist; the reading has segments 0-{len(rows) - 1}"
            )
        return {"seed": data["seed"], "segments": rows}

    def _reuse(self, out: Path, segment: Segment, row: Mapping[str, Any]) -> SegmentAudio:
        import soundfile as sf

        path = out / str(row["file"])
        if not path.is_file():
            raise FileNotFoundError(
                f"regenerate: {path} (segment {segment.index}) is missing; add {segment.index} to regenerate"
            )
        wav, sr = sf.read(path, dtype="float32")
        if sr != self.sample_rate:
            raise ReadingTextError(f"regenerate: {path} is {sr} Hz, expected {self.sample_rate} Hz")
        return SegmentAudio(segment, np.asarray(wav, np.float32), int(row["seed"]), int(row.get("take", 0)),
                            row.get("errors"), int(row.get("candidate", 0)), reused=True)  # fmt: skip


def read(tts: Any, text: str, out_dir: Any = None, regenerate: Any = None, **kwargs: Any) -> ReadingResult:
    """``Reader(tts, **kwargs).read(text, out_dir, regenerate)``."""
    return Reader(tts, **kwargs).read(text, out_dir=out_dir, regenerate=regenerate)


def stream(tts: Any, text: str, **kwargs: Any) -> Iterator[StreamChunk]:
    """``Reader(tts, **kwargs).stream(text)``."""
    return Reader(tts, **kwargs).stream(text)
