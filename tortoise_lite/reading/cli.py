"""The reading side of ``python -m tortoise_lite.synthesize``: presets, long-form files, streaming.

``preset=NAME`` fills sampler, steps, guidance and candidates unless the command line gives them.
``textfile=FILE`` (or ``text=... stream=true``, or ``regenerate=3,7``) reads through
:class:`~tortoise_lite.reading.Reader` into ``out_dir``: ``segment_NNNN.wav``, ``combined.wav`` and
``manifest.json``, with a rich progress bar, then prints wall time and real-time factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tortoise_lite.reading.reader import PRESET_KEYS, Reader, load_preset


def explicit_keys(argv: Sequence[str]) -> frozenset[str]:
    """Top-level keys set on the command line (``sampler=heun`` -> ``sampler``, ``steps=4`` -> ``steps``)."""
    keys = set()
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if sep:
            keys.add(key.lstrip("+~").split(".")[0].split("@")[0])
    return frozenset(keys)


@dataclass
class Generation:
    sampler: Any  # a Sampler, a name, or None (the checkpoint's)
    steps: int | None
    guidance: float
    candidates: int
    preset: str | None
    candidates_explicit: bool = False


def resolve_generation(cfg: DictConfig, explicit: Iterable[str] = ()) -> Generation:
    """Command line > preset > ``conf/synthesize.yaml`` for sampler, steps, guidance and candidates."""
    from tortoise_lite.evaluation.cli import build_sampler_from_config

    explicit = set(explicit)
    node = cfg.get("preset")
    preset: dict[str, Any] = {}
    name = None
    if node is not None:
        name = str(node.get("name")) if isinstance(node, DictConfig) else str(node)
        preset = {k: node.get(k) for k in PRESET_KEYS} if isinstance(node, DictConfig) else load_preset(name)

    def pick(key: str, default: Any) -> Any:
        if key in explicit or key not in preset or preset[key] is None:
            return default
        return preset[key]

    sampler = build_sampler_from_config(cfg)
    if "sampler" not in explicit and preset.get("sampler") is not None:
        sampler = str(preset["sampler"])
    steps = pick("steps", cfg.get("steps"))
    return Generation(
        sampler=sampler,
        steps=None if steps is None else int(steps),
        guidance=float(pick("guidance", cfg.get("guidance", 1.0))),
        candidates=int(pick("candidates", cfg.get("candidates", 1) or 1)),
        preset=name,
        candidates_explicit="candidates" in explicit,
    )


def reading_requested(cfg: DictConfig, gen: Generation) -> bool:
    """Whether the reader runs: ``textfile=``, ``stream=true``, ``regenerate=`` or candidates on ``text=``
    (``texts=FILE`` of short lines keeps plain synthesis; asking it for candidates is an error)."""
    from tortoise_lite.evaluation.cli import UsageError

    if cfg.get("texts") is not None and gen.candidates > 1 and gen.candidates_explicit:
        raise UsageError(
            "candidates=K works when reading (text=... or textfile=FILE), not with texts=FILE; "
            "use textfile=FILE to read the lines as a passage"
        )
    return bool(
        cfg.get("textfile") is not None
        or cfg.get("stream")
        or cfg.get("regenerate") not in (None, "", [])
        or (gen.candidates > 1 and cfg.get("texts") is None)
    )


def voice_arg(cfg: DictConfig) -> Any:
    """``voice=`` of a command line: a string (path, name, a+b) or a list of clip paths (``voice=[a,b]``)."""
    voice = cfg.get("voice")
    if voice is None or voice == "":
        return None
    if OmegaConf.is_list(voice):
        return [str(v) for v in voice]
    return str(voice)


def load_tts(cfg: DictConfig, ckpt: Any) -> tuple[Any, str]:
    """``(TextToSpeech, device)`` for ``ckpt`` as the synthesize config says (device, threads, EMA weights,
    vocoder, voices_dir)."""
    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.evaluation.cli import build_vocoder_spec, setup_torch

    device = setup_torch(cfg)
    model, info = load_checkpoint(str(ckpt), device=device, use_ema=bool(cfg.use_ema))
    vocoder = build_vocoder_spec(cfg, model.mel_spec)
    tts = TextToSpeech(model, vocoder=vocoder, device=device, info=info, voices_dir=cfg.get("voices_dir"))
    return tts, device


def run_reading(cfg: DictConfig, gen: Generation) -> int:
    from pathlib import Path

    from tortoise_lite.evaluation.cli import UsageError, require
    from tortoise_lite.reading.text import read_text_file

    ckpt = require(cfg, "ckpt", "the text-to-mel checkpoint (e.g. outputs/speech/checkpoints/last.ckpt)")
    if cfg.get("textfile") is not None and cfg.get("text") is not None:
        raise UsageError("give either text=... or textfile=FILE, not both")
    if cfg.get("texts") is not None:
        raise UsageError("texts=FILE is one short text per line; for reading a passage use textfile=FILE")
    if cfg.get("textfile") is not None:
        text = read_text_file(cfg.textfile, encoding=str(cfg.get("encoding") or "utf-8"))
        source = str(cfg.textfile)
    elif cfg.get("text") is not None:
        text, source = str(cfg.text), "text="
    else:
        raise UsageError('nothing to read: add textfile=FILE or text="..."')
    tts, device = load_tts(cfg, ckpt)
    reading = cfg.get("reading") or {}
    pauses = OmegaConf.to_container(reading.get("pauses"), resolve=True) if reading.get("pauses") else None
    reader = Reader(
        tts,
        sampler=gen.sampler,
        steps=gen.steps,
        guidance=gen.guidance,
        candidates=gen.candidates,
        scorer=str(cfg.get("scorer") or "recognizer"),
        seed=None if cfg.get("seed") is None else int(cfg.seed),
        speaker=cfg.get("speaker"),
        voice=voice_arg(cfg),
        voice_guidance=None if cfg.get("voice_guidance") is None else float(cfg.voice_guidance),
        length_scale=float(cfg.length_scale),
        temperature=None if cfg.get("temperature") is None else float(cfg.temperature),
        batch_size=int(cfg.batch_size),
        first_batch=int(reading.get("first_batch", 1)),
        max_chars=int(reading.get("max_chars", 100)),
        pauses=pauses,
        unknown=str(reading.get("unknown", "error")),
        progress=bool(cfg.get("progress", True)) and not bool(cfg.get("stream")),
    )
    reader.preset = gen.preset
    plan = reader.plan(text)  # every text problem is reported before any compute
    for w in plan.warnings:
        print(f"warning: {w}")
    out = Path(str(cfg.out_dir)).expanduser()

    def on_chunk(chunk: Any) -> None:
        if cfg.get("stream"):
            what = "first audio" if chunk.index == 0 else "chunk"
            print(
                f"{what} {chunk.index:4d} ready at {chunk.ready_seconds:6.2f} s "
                f"({chunk.wav.size / chunk.sample_rate:5.2f} s): {chunk.text[:60]}",
                flush=True,
            )

    result = reader.read(
        plan,
        out_dir=out,
        regenerate=cfg.get("regenerate"),
        on_chunk=on_chunk,
        stream_combined=bool(cfg.get("stream")),
    )
    redone = f", regenerated {result.generated}" if cfg.get("regenerate") not in (None, "", []) else ""
    print(
        f"{len(result.segments)} segments from {source} ({len(plan.normalized)} characters) -> {out}/combined.wav "
        f"+ segment wavs + manifest.json{redone} | {result.settings['sampler']} {result.settings['steps']} steps, "
        f"guidance {gen.guidance:g}, {gen.candidates} candidate(s){f', preset {gen.preset}' if gen.preset else ''} | "
        f"{result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s: RTF {result.rtf:.3f}, first audio "
        f"after {result.first_audio_seconds:.2f} s on {device}"
    )
    return 0
