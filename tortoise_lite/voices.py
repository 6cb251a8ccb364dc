"""Voices of a voice model: ``python -m tortoise_lite.voices ckpt=PATH voice=CLIPS out=NAME.pt`` or ``list=true``.

``voice=`` takes what ``synthesize voice=`` takes (a folder of clips, a wav, ``[a.wav,b.wav]``, a name in
``voices_dir``, a trained voice, ``a+b``); the latent is written to ``out`` (atomically) and can be given as
``synthesize voice=NAME.pt``, or put in ``voices_dir`` as ``NAME.pt``. ``list=true`` prints the trained
voices and the voices in ``voices_dir``. A bad clip, latent or name prints one ``error:`` line and exits
with status 2. Options: ``conf/voices.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from tortoise_lite.evaluation.cli import UsageError, compose, require, run_cli, setup_torch

USAGE = """usage: python -m tortoise_lite.voices ckpt=PATH (voice=CLIPS out=NAME.pt | list=true) [key=value ...]

  ckpt=PATH            a voice model's checkpoint (python -m tortoise_lite.train +recipe=voices)
  voice=CLIPS          a folder of clips, a wav, [a.wav,b.wav], a name (voices_dir or trained), a+b (blend)
  out=NAME.pt          where the voice latent goes; then: synthesize ckpt=PATH voice=NAME.pt text="..."
  list=true            print the trained voices and the voices in voices_dir
  voices_dir=DIR       <name>/ folders of reference clips and <name>.pt latents
  device=cpu|cuda|auto threads=N use_ema=true
  --cfg                print the composed config; all keys: conf/voices.yaml"""


def list_voices(tts) -> list[str]:
    """The lines of ``list=true``."""
    from tortoise_lite.voice import list_voices_dir, min_reference_seconds, require_voice_model

    require_voice_model(tts)
    trained = tts.trained_voices
    lines = [f"trained voices ({len(trained)}): {', '.join(trained) or 'none stored in this checkpoint'}"]
    if tts.voices_dir is None:
        lines.append("voices_dir: not given (voices_dir=DIR: <name>/ folders of clips, <name>.pt latents)")
    else:
        names = list_voices_dir(tts.voices_dir)
        lines.append(f"voices in voices_dir={tts.voices_dir} ({len(names)}): {', '.join(names) or 'none'}")
    lines.append(
        f"voice latents: {tts.voice_dim} values; clips: at least {min_reference_seconds(tts.mel_spec):.2f} s each, "
        f"read at {tts.sample_rate} Hz"
    )
    return lines


def run(cfg: DictConfig) -> int:
    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.reading.cli import voice_arg
    from tortoise_lite.voice import require_voice_model, save_latent

    ckpt = require(cfg, "ckpt", "a voice model's checkpoint (python -m tortoise_lite.train +recipe=voices)")
    voice = voice_arg(cfg)
    if not cfg.get("list"):
        if voice is None:
            raise UsageError(
                "voice=... is required: a folder of reference clips, a wav, or a+b (or list=true)"
            )
        require(cfg, "out", "where the latent goes, e.g. out=voices/alice.pt")
    voices_dir = cfg.get("voices_dir")
    if voices_dir and not Path(str(voices_dir)).expanduser().is_dir():
        raise UsageError(
            f"voices_dir={voices_dir}: no such folder (<name>/ folders of clips, <name>.pt latents)"
        )
    device = setup_torch(cfg)
    model, info = load_checkpoint(str(ckpt), device=device, use_ema=bool(cfg.use_ema))
    tts = TextToSpeech(model, vocoder="griffin_lim", device=device, info=info, voices_dir=voices_dir)
    require_voice_model(tts)
    if cfg.get("list"):
        for line in list_voices(tts):
            print(line)
        if voice is None:
            return 0
    if cfg.get("out") is None:
        raise UsageError("out=... is required: where the latent goes, e.g. out=voices/alice.pt")
    out = Path(str(cfg.out)).expanduser()
    if out.suffix != ".pt":
        raise UsageError(f"out={out}: a voice latent is a .pt file (e.g. out={out.with_suffix('.pt')})")
    v = tts.resolve_voice(voice)
    if v.latent.ndim != 1:
        raise UsageError(
            "voice= gives one voice here: a folder, files, a name or a+b, not a batch of latents"
        )
    path = save_latent(out, v.latent, tts, clips=v.clips, seconds=v.seconds)
    if v.clips:
        used = f"{len(v.clips)} clip{'s' if len(v.clips) != 1 else ''}, {v.seconds:.1f} s of audio, {v.windows} windows"
        print(f"{path}  voice {v.description}: {used}")
        for c in v.clips:
            print(f"  {c}")
    else:
        print(f"{path}  voice {v.description}")
    print(f'use it: python -m tortoise_lite.synthesize ckpt={ckpt} voice={path} text="..."')
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("voices", lambda args: run(compose("voices", args)), argv, USAGE)


if __name__ == "__main__":
    sys.exit(main())
