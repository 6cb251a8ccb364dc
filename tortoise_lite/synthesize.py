"""Synthesize speech: ``python -m tortoise_lite.synthesize ckpt=PATH text="..." [key=value ...]``.

Writes one wav per text (and mel PNGs with ``mel_png=true``) to ``out_dir`` and prints the real-time
factor split into acoustic model and vocoder time. Options: ``conf/synthesize.yaml`` (``--cfg`` prints the
composed config). Bad input (empty text, unknown symbols, a missing or mismatched checkpoint) prints one
``error:`` line and exits with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from tortoise_lite.evaluation.cli import (
    UsageError,
    compose,
    require,
    run_cli,
)

USAGE = """usage: python -m tortoise_lite.synthesize ckpt=PATH (text="..." | texts=FILE) [key=value ...]

  ckpt=PATH            text-to-mel checkpoint from `python -m tortoise_lite.train`
  text="..."           the text to speak; or texts=FILE with one text per line
  out_dir=DIR          where wavs go (default outputs/synthesize); mel_png=true adds mel figures
  sampler=NAME         dpmpp_2m | dpmpp_3m | euler | heun | ddim | ... (default: the checkpoint's)
  steps=N guidance=S seed=N length_scale=X temperature=X batch_size=N pitch_shift=SEMITONES
  vocoder=griffin_lim  or vocoder_ckpt=PATH for a trained vocoder
  voice=CLIPS          voice models: a folder of clips, a wav, a .pt latent, a name (voices_dir or trained),
                       a+b (a blend); voices_dir=DIR (<name>/ clip folders, <name>.pt); voice_guidance=S
  device=cpu|cuda|auto threads=N
  preset=NAME          ultra_fast | fast | standard | high_quality (sampler, steps, guidance, candidates)
  textfile=FILE        read a passage: out_dir/combined.wav + segment_NNNN.wav + manifest.json
  stream=true          write combined.wav chunk by chunk as segments are ready (textfile= or text=)
  regenerate=3,7       new takes of those segments of the reading in out_dir (others reused as they are)
  candidates=K         K takes per segment, the recognizer's best kept
  --cfg                print the composed config; all keys: conf/synthesize.yaml"""


def read_texts(cfg: DictConfig) -> list[str]:
    """``text=`` or ``texts=FILE`` (one per line, blank lines skipped); errors name the problem."""
    if cfg.get("text") is not None and cfg.get("texts") is not None:
        raise UsageError("give either text=... or texts=FILE, not both")
    if cfg.get("texts") is not None:
        path = Path(str(cfg.texts)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"texts={path}: no such file (one text per line expected)")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise UsageError(f"texts={path} holds no text (every line is blank)")
        return texts
    if cfg.get("text") is None:
        raise UsageError('nothing to say: add text="..." or texts=FILE')
    text = str(cfg.text)
    if not text.strip():
        raise UsageError('text is empty: give some words, e.g. text="The red cat sees a ship."')
    return [text]


def run(cfg: DictConfig, explicit: frozenset[str] = frozenset()) -> int:
    from tortoise_lite.reading.cli import (
        load_tts,
        reading_requested,
        resolve_generation,
        run_reading,
        voice_arg,
    )

    ckpt = require(cfg, "ckpt", "the text-to-mel checkpoint (e.g. outputs/speech/checkpoints/last.ckpt)")
    gen = resolve_generation(cfg, explicit)  # command line > preset > conf/synthesize.yaml
    if reading_requested(cfg, gen):
        return run_reading(cfg, gen)
    texts = read_texts(cfg)
    tts, device = load_tts(cfg, ckpt)
    texts = tts.check_texts(texts)  # empty / unknown symbols: fail before any compute
    voice = tts.resolve_voice(voice_arg(cfg))  # bad clips / latents / names: fail before any compute
    speaker = cfg.get("speaker")  # an id or a trained speaker name (tones: a timbre)
    result = tts.synthesize(
        texts,
        sampler=gen.sampler,
        steps=gen.steps,
        guidance=gen.guidance,
        seed=None if cfg.get("seed") is None else int(cfg.seed),
        length_scale=float(cfg.length_scale),
        temperature=None if cfg.temperature is None else float(cfg.temperature),
        batch_size=int(cfg.batch_size),
        speaker=speaker,
        voice=voice,
        voice_guidance=None if cfg.get("voice_guidance") is None else float(cfg.voice_guidance),
        pitch_shift=float(cfg.get("pitch_shift") or 0.0),
    )
    if voice is not None:
        print(
            f"voice: {voice.description}"
            + (f" ({len(voice.clips)} clips, {voice.seconds:.1f} s)" if voice.clips else "")
        )
    written = result.save(str(cfg.out_dir), prefix=str(cfg.prefix), mel_png=bool(cfg.mel_png))
    wavs = [p for p in written if p.suffix == ".wav"]
    for text, path, wav in zip(texts, wavs, result.wavs):
        print(f"{path}  {wav.numel() / result.sample_rate:5.2f} s  {text}")
    n_png = len(written) - len(wavs)
    print(
        f"{len(wavs)} wav{'s' if len(wavs) != 1 else ''}{f' + {n_png} png' if n_png else ''} in {cfg.out_dir} | "
        f"{result.sampler}, {result.nfe} NFE, vocoder {type(tts.vocoder).__name__} | "
        f"RTF {result.rtf:.3f} (acoustic {result.acoustic_rtf:.3f}, vocoder {result.vocoder_rtf:.3f}) "
        f"for {result.audio_seconds:.2f} s of audio on {device}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from tortoise_lite.reading.cli import explicit_keys

    return run_cli(
        "synthesize", lambda args: run(compose("synthesize", args), explicit_keys(args)), argv, USAGE
    )


if __name__ == "__main__":
    sys.exit(main())
