"""The Python API: text in, waveforms (and the mels behind them) out.

    from tortoise_lite.api import TextToSpeech

    tts = TextToSpeech.from_checkpoint("outputs/speech/checkpoints/last.ckpt")          # Griffin-Lim
    tts = TextToSpeech.from_checkpoint(ckpt, vocoder="outputs/vocoder/vocoder.pt")      # a trained vocoder
    out = tts.synthesize(["the red cat sees a ship", "4 0 7"], sampler="dpmpp_2m", steps=10, seed=0)
    out.wavs[0]          # (samples,) float32 at out.sample_rate
    out.mels[0]          # (n_mels, frames) raw natural-log mel
    out.save("synth/")   # wavs (and mel PNGs with mel_png=True)

Items are generated in chunks of ``batch_size``. With ``seed=N`` every item draws its noise from its own
generator seeded by ``N`` and is vocoded on its own (trimmed to its length), so an item's output depends
only on its text and the seed: the same alone, in any batch, at any position. ``seed=[N0, N1, ...]`` gives
one seed per item (e.g. variations of one text).

Voice models (``+recipe=voices``: a reference encoder, ``model.voice_dim > 0``) speak in the voice of
reference clips, zero-shot::

    tts = TextToSpeech.from_checkpoint(ckpt, voices_dir="voices/")      # voices/<name>/*.wav or <name>.pt
    tts.trained_voices                                                  # ['en-us+Alex', 'en-us+f3', ...]
    out = tts.synthesize("hello there", voice="clips/alice/")           # a folder of clips, a wav, a .pt
    out = tts.synthesize("hello there", voice="alice+en-us+f3")         # a blend: the mean of the latents
    latent = tts.voice_latent(["a.wav", "b.wav"])                       # (voice_dim,), or [(wav, sr), ...]

``voice=None`` on a voice model speaks in the model's learned average voice; ``voice_guidance`` scales the
voice independently of ``guidance`` (see :mod:`tortoise_lite.models.text_to_mel`). What ``voice=`` may name
and every error it raises: :mod:`tortoise_lite.voice`.

The vocoder is ``"griffin_lim"`` (training-free, the default), a path to any checkpoint
:func:`tortoise_lite.vocoders.load_vocoder` reads, or a :class:`~tortoise_lite.vocoders.Vocoder`. Its
MelSpec must equal the acoustic model's: a difference raises ``MelSpecMismatchError`` naming every
differing field with both values.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tortoise_lite.audio.mel import MelSpec

__all__ = [
    "BUILTIN_VOCODERS",
    "RecordingSampler",
    "SynthesisResult",
    "TextToSpeech",
    "build_sampler",
    "build_vocoder",
    "load_checkpoint",
]

#: vocoders that need no checkpoint, by the name the API and the CLI accept
BUILTIN_VOCODERS = ("griffin_lim",)


# ---------------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------------
def build_sampler(sampler: Any = None, default: Any = None) -> Any:
    """A :class:`~tortoise_lite.diffusion.samplers.Sampler` from a Sampler, a name or None.

    A name (``"dpmpp_2m"``, ``"heun"``...) takes the settings of ``conf/sampler/<name>.yaml`` (its grid,
    eta, default steps) when that file exists, else the Sampler defaults for that name. None gives
    ``default`` (the checkpoint's sampler) or the package default.
    """
    from tortoise_lite.diffusion.samplers import SAMPLERS, Sampler

    if sampler is None:
        return default if default is not None else Sampler()
    if not isinstance(sampler, str):
        if not callable(sampler):
            raise TypeError(
                f"sampler must be a Sampler, a sampler name or None, got {type(sampler).__name__}"
            )
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(sorted(SAMPLERS))}")
    from tortoise_lite.paths import config_dir

    try:
        path = config_dir() / "sampler" / f"{sampler}.yaml"
    except FileNotFoundError:
        path = None
    if path is None or not path.is_file():
        return Sampler(name=sampler)
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    target = node.pop("_target_", None)
    if target not in (None, "tortoise_lite.diffusion.samplers.Sampler", "tortoise_lite.diffusion.Sampler"):
        raise ValueError(f"{path}: _target_ {target!r} is not tortoise_lite.diffusion.samplers.Sampler")
    return Sampler(**node)


class RecordingSampler:
    """Wraps a sampler to record what ``TextToMel.generate`` does not return: the number of model
    evaluations, the time grid and (optionally) the x0 prediction ``D_i`` used at every step.

    After a call: ``nfe`` (int), ``ts`` (N + 1,) float64, ``x0_preds`` list of (B, n_mels, T) in the
    model's *normalized* space (detached, on CPU), one per step, and ``final`` (B, n_mels, T) normalized.
    """

    def __init__(self, sampler: Any, record_x0: bool = False) -> None:
        self.sampler = sampler
        self.record_x0 = record_x0
        self.nfe = 0
        self.ts: Tensor | None = None
        self.x0_preds: list[Tensor] = []
        self.final: Tensor | None = None

    @property
    def name(self) -> str:
        return str(getattr(self.sampler, "name", type(self.sampler).__name__))

    @property
    def steps(self) -> int:
        return int(getattr(self.sampler, "steps", 0))

    def __call__(self, x0_fn, schedule, noise, generator=None, steps=None, **kwargs):
        self.x0_preds = []
        user_cb = kwargs.pop("callback", None)

        def callback(i: int, x: Tensor, d: Tensor) -> None:
            if self.record_x0:
                self.x0_preds.append(d.detach().float().cpu())
            if user_cb is not None:
                user_cb(i, x, d)

        result = self.sampler(
            x0_fn, schedule, noise, generator=generator, steps=steps, callback=callback, **kwargs
        )
        self.nfe = int(result.nfe)
        self.ts = result.ts
        self.final = result.x.detach().float().cpu() if self.record_x0 else None
        return result


# ---------------------------------------------------------------------------------------------------
# vocoders
# ---------------------------------------------------------------------------------------------------
def build_vocoder(vocoder: Any, mel_spec: MelSpec, what_model: str = "model") -> Any:
    """A vocoder for ``mel_spec`` from ``"griffin_lim"``, a checkpoint path or a Vocoder object.

    Raises ``MelSpecMismatchError`` (naming every differing field, model and vocoder values) when the
    vocoder was made for other mel settings, ``ValueError`` for a name that is neither built in nor a path.
    """
    from tortoise_lite.vocoders import GriffinLim, Vocoder, load_vocoder

    if vocoder is None or (isinstance(vocoder, str) and vocoder == "griffin_lim"):
        return GriffinLim(mel_spec)
    if isinstance(vocoder, Vocoder):
        what = f"vocoder {type(vocoder).__name__}"
    elif isinstance(vocoder, (str, os.PathLike)):
        path = Path(vocoder).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"vocoder {str(vocoder)!r} is neither a built-in vocoder ({', '.join(BUILTIN_VOCODERS)}) nor an "
                "existing checkpoint file/directory"
            )
        vocoder = load_vocoder(path)
        what = f"vocoder {path}"
    else:
        raise TypeError(
            f"vocoder must be 'griffin_lim', a checkpoint path or a Vocoder, got {type(vocoder).__name__}"
        )
    mel_spec.check_compatible(vocoder.mel_spec, what_self=what_model, what_other=what)
    return vocoder


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu", use_ema: bool = True) -> tuple[Any, Any]:
    """``(TextToMel in eval mode, CheckpointInfo)``; every unreadable file is a ``CheckpointError``
    naming it (torch.load reports files of other kinds with IndexError/EOFError/UnpicklingError)."""
    import pickle

    from tortoise_lite.checkpoint import CheckpointError, load_text_to_mel

    try:
        return load_text_to_mel(Path(path).expanduser(), map_location=torch.device(device), use_ema=use_ema)
    except CheckpointError:
        raise
    except (IndexError, EOFError, pickle.UnpicklingError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"checkpoint {path} is not a torch checkpoint file ({type(e).__name__}); pass a .ckpt written by "
            "python -m tortoise_lite.train"
        ) from e


# ---------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------
@dataclass
class SynthesisResult:
    """What :meth:`TextToSpeech.synthesize` returns.

    wavs: per item ``(samples_i,)`` float32 CPU tensors; mels: per item ``(n_mels, frames_i)`` raw log-mel.
    acoustic_seconds / vocoder_seconds: wall time of mel generation and of vocoding (whole call).
    nfe: model evaluations per generated chunk (the same for every chunk of a deterministic sampler).
    """

    texts: list[str]
    wavs: list[Tensor]
    mels: list[Tensor]
    sample_rate: int
    mel_spec: MelSpec
    nfe: int
    sampler: str
    steps: int
    acoustic_seconds: float
    vocoder_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return sum(int(w.numel()) for w in self.wavs) / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: (acoustic + vocoder) wall time / seconds of audio produced."""
        return (self.acoustic_seconds + self.vocoder_seconds) / max(self.audio_seconds, 1e-9)

    @property
    def acoustic_rtf(self) -> float:
        return self.acoustic_seconds / max(self.audio_seconds, 1e-9)

    @property
    def vocoder_rtf(self) -> float:
        return self.vocoder_seconds / max(self.audio_seconds, 1e-9)

    def save(self, out_dir: str | os.PathLike, prefix: str = "utt", mel_png: bool = False) -> list[Path]:
        """Write ``<prefix>_<k>.wav`` (and ``.png`` mel figures) into ``out_dir``; returns the paths."""
        from tortoise_lite.audio.io import save_wav

        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        width = max(3, len(str(len(self.wavs) - 1)))
        written: list[Path] = []
        for k, (wav, mel) in enumerate(zip(self.wavs, self.mels)):
            stem = f"{prefix}_{k:0{width}d}"
            save_wav(out / f"{stem}.wav", wav, self.sample_rate)
            written.append(out / f"{stem}.wav")
            if mel_png:
                from tortoise_lite.evaluation.plots import save_mel_png

                written.append(save_mel_png(out / f"{stem}.png", mel, self.mel_spec, title=self.texts[k]))
        return written


# ---------------------------------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TextToSpeech:
    """A text-to-mel model and a vocoder, checked to share one MelSpec.

    Args:
        model: a ``TextToMel`` (holds tokenizer, MelSpec, MelStats and its default sampler).
        vocoder: ``"griffin_lim"``, a vocoder checkpoint path, or a ``Vocoder``.
        device: where both run (default: the model's device).
        info: the ``CheckpointInfo`` when loaded from a checkpoint.
        voices_dir: a folder of voices for voice models: ``<name>/`` folders of clips or ``<name>.pt``
            latents, named by ``voice="<name>"``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        vocoder: Any = "griffin_lim",
        device: Any = None,
        info: Any = None,
        voices_dir: str | os.PathLike | None = None,
    ):
        self.info = info
        self.voices_dir = Path(voices_dir).expanduser() if voices_dir else None
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        what = f"model {info.path}" if info is not None else "model"
        self.vocoder = build_vocoder(vocoder, self.mel_spec, what_model=what).to(self.device).eval()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        vocoder: Any = "griffin_lim",
        device: Any = "cpu",
        use_ema: bool = True,
        voices_dir: str | os.PathLike | None = None,
    ) -> TextToSpeech:
        """Load a training checkpoint (``CheckpointError`` naming the file if it is missing or not one)."""
        model, info = load_checkpoint(path, device=device, use_ema=use_ema)
        return cls(model, vocoder=vocoder, device=device, info=info, voices_dir=voices_dir)

    @property
    def mel_spec(self) -> MelSpec:
        return self.model.mel_spec

    @property
    def sample_rate(self) -> int:
        return int(self.mel_spec.sample_rate)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def speakers(self) -> list[str]:
        """Speaker names by id, as trained (empty for a single-speaker model or an in-memory model)."""
        if not getattr(self.model, "n_speakers", 0):  # a voice model names voices, not table rows
            return []
        return list(getattr(self.info, "speakers", None) or [])

    @property
    def voice_dim(self) -> int:
        """Size of the voice latent (0: the model takes no voice)."""
        return int(getattr(self.model, "voice_dim", 0) or 0)

    @property
    def trained_voices(self) -> list[str]:
        """Names of the voices a voice model was trained on (``voice="en-us+f3"``); empty for other models."""
        from tortoise_lite.voice import trained_voices

        return trained_voices(self.model, self.info)

    @property
    def voices(self) -> list[str]:
        """Every voice name ``voice=`` takes: the trained voices, then those of ``voices_dir``."""
        from tortoise_lite.voice import list_voices_dir

        if self.voice_dim <= 0:
            return []
        return list(dict.fromkeys([*self.trained_voices, *list_voices_dir(self.voices_dir)]))

    def resolve_voice(self, voice: Any) -> Any:
        """``voice=`` -> a :class:`tortoise_lite.voice.Voice` (latent, clips, seconds), None for None.
        Raises a one-line :class:`tortoise_lite.voice.VoiceError` naming the file for every bad voice."""
        from tortoise_lite.voice import resolve_voice

        return resolve_voice(voice, self.model, self.info, self.voices_dir)

    def voice_latent(self, clips: Any) -> Tensor:
        """The voice latent (voice_dim,) of reference clips: a folder, a file, a list of paths, or a list of
        ``(wav, sample_rate)`` pairs (any rate, mono or multi-channel); anything ``voice=`` takes."""
        return self.resolve_voice(clips).latent

    def speaker_id(self, speaker: int | str) -> int:
        """A speaker id from an id or a trained speaker name (``ValueError`` listing the known names)."""
        if isinstance(speaker, str):
            if speaker not in self.speakers:
                known = ", ".join(self.speakers) or "none: this model has no named speakers"
                raise ValueError(f"unknown speaker {speaker!r}; known speakers: {known}")
            return self.speakers.index(speaker)
        return int(speaker)

    def check_texts(self, texts: str | Sequence[str]) -> list[str]:
        """Validate inputs before any compute: non-empty strings whose symbols the vocabulary knows.

        Raises ``ValueError`` for an empty text and ``UnknownSymbolError`` (a ValueError) naming the item.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no text to synthesize: pass one or more non-empty strings")
        for k, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {k} is a {type(t).__name__}, not a string")
            if not t.strip():
                raise ValueError(f"text {k} is empty: give every item some words")
            if self.tokenizer is not None:
                ids = self.tokenizer.encode(t)  # UnknownSymbolError names the symbols and the text
                if not ids:
                    raise ValueError(f"text {k} ({t!r}) has no symbols the model can read")
        return texts

    @torch.no_grad()
    def generate_mels(
        self,
        texts: str | Sequence[str],
        sampler: Any = None,
        steps: int | None = None,
        guidance: float = 1.0,
        seed: int | Sequence[int] | None = None,
        length_scale: float = 1.0,
        temperature: float | None = None,
        batch_size: int = 8,
        durations: Sequence[Sequence[int]] | None = None,
        speaker: int | str | Sequence[int | str] | None = None,
        recorder: Callable[[RecordingSampler, int, int], None] | None = None,
        record_x0: bool = False,
        voice: Any = None,
        voice_guidance: float | None = None,
        pitch_shift: float = 0.0,
    ) -> tuple[list[Tensor], RecordingSampler]:
        """Mels only: per item ``(n_mels, frames_i)`` raw log-mel (CPU), and the sampler wrapper of the
        last chunk (``nfe``, ``ts``). ``recorder(wrapper, start, stop)`` is called after every chunk
        (with ``record_x0`` the wrapper holds that chunk's x0 predictions). ``voice`` / ``voice_guidance``:
        as in :meth:`synthesize`. ``pitch_shift``: semitones, as in :meth:`synthesize`."""
        from tortoise_lite.diffusion.samplers import make_generators

        texts = self.check_texts(texts)
        n = len(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if steps is not None and int(steps) < 1:
            raise ValueError(f"steps must be >= 1 (or None for the sampler's), got {steps}")
        if durations is not None and len(durations) != n:
            raise ValueError(f"durations: got {len(durations)} sequences for {n} texts")
        seeds = None
        if seed is not None:
            seeds = [int(seed)] * n if isinstance(seed, int) else [int(s) for s in seed]
            if len(seeds) != n:
                raise ValueError(
                    f"seed: got {len(seeds)} seeds for {n} texts (give one int, or one per text)"
                )
        speakers = None
        if speaker is not None:
            one = isinstance(speaker, (int, str))
            speakers = [self.speaker_id(s) for s in ([speaker] * n if one else speaker)]
            if len(speakers) != n:
                raise ValueError(f"speaker: got {len(speakers)} ids for {n} texts")
        voice_kw = self._voice_kwargs(voice, voice_guidance, n)
        wrapper = RecordingSampler(build_sampler(sampler, getattr(self.model, "sampler", None)), record_x0)
        mels: list[Tensor] = []
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            chunk = texts[start:stop]
            gens = None
            if seeds is not None:  # one generator per item, from that item's seed alone
                gens = [make_generators(s, 1, self.device)[0] for s in seeds[start:stop]]
            dur = None
            if durations is not None:
                seqs = [list(map(int, d)) for d in durations[start:stop]]
                dur = torch.zeros(len(seqs), max(len(s) for s in seqs), dtype=torch.long)
                for i, s in enumerate(seqs):
                    dur[i, : len(s)] = torch.as_tensor(s)
                dur = dur.to(self.device)
            spk = torch.tensor(speakers[start:stop], device=self.device) if speakers is not None else None
            chunk_voice = dict(voice_kw)
            if chunk_voice.get("voice") is not None and chunk_voice["voice"].ndim == 2:  # one latent per item
                chunk_voice["voice"] = chunk_voice["voice"][start:stop]
            mel, lengths = self.model.generate(
                texts=chunk,
                sampler=wrapper,
                steps=steps,
                guidance=guidance,
                length_scale=length_scale,
                temperature=temperature,
                durations=dur,
                speaker=spk,
                generator=gens,
                **({"pitch_shift": float(pitch_shift)} if pitch_shift else {}),
                **chunk_voice,
            )
            for i in range(len(chunk)):
                mels.append(mel[i, :, : int(lengths[i])].float().cpu())
            if recorder is not None:
                recorder(wrapper, start, stop)
        return mels, wrapper

    def _voice_kwargs(self, voice: Any, voice_guidance: float | None, n: int) -> dict[str, Any]:
        """The voice keywords of ``TextToMel.generate`` (none when no voice is asked for: other models are
        called as before); a (n, voice_dim) latent gives one voice per item."""
        from tortoise_lite.voice import VoiceError

        kw: dict[str, Any] = {}
        if voice_guidance is not None:
            if self.voice_dim <= 0:
                raise VoiceError(
                    "voice_guidance needs a voice model (+recipe=voices); this one takes no voice"
                )
            kw["voice_guidance"] = float(voice_guidance)
        resolved = self.resolve_voice(voice)
        if resolved is not None:
            latent = resolved.latent.to(self.device)
            if latent.ndim == 2 and latent.shape[0] != n:
                raise VoiceError(
                    f"voice: got {latent.shape[0]} latents for {n} texts (give one, or one per text)"
                )
            kw["voice"] = latent
        return kw

    @torch.no_grad()
    def vocode(self, mels: Sequence[Tensor]) -> list[Tensor]:
        """Per item ``(n_mels, frames_i)`` log-mel -> ``(samples_i,)`` float32 CPU waveforms.

        Items are vocoded one at a time at their own length: no padding reaches the vocoder, so a
        waveform does not depend on the other items (Griffin-Lim's random phase is drawn per item).
        """
        spec = self.mel_spec
        # STFT-based vocoders reflect-pad the signal: a mel of a frame or two (an untrained duration
        # predictor, a one-symbol text) is padded with silence to the shortest length they accept
        pad = spec.n_fft // 2 if spec.center else (spec.n_fft - spec.hop) // 2
        min_frames = pad // spec.hop + 2
        silence = math.log(spec.log_floor)
        wavs = []
        for mel in mels:
            n = int(mel.shape[-1])
            x = mel.to(self.device)[None]
            if n < min_frames:
                x = torch.nn.functional.pad(x, (0, min_frames - n), value=silence)
            wav = self.vocoder(x, mel_spec=spec)[0]
            if n < min_frames:
                wav = wav[: spec.num_samples(n)]
            wavs.append(wav.float().cpu())
        return wavs

    @torch.no_grad()
    def synthesize(
        self,
        texts: str | Sequence[str],
        sampler: Any = None,
        steps: int | None = None,
        guidance: float = 1.0,
        seed: int | Sequence[int] | None = None,
        length_scale: float = 1.0,
        temperature: float | None = None,
        batch_size: int = 8,
        durations: Sequence[Sequence[int]] | None = None,
        speaker: int | str | Sequence[int | str] | None = None,
        voice: Any = None,
        voice_guidance: float | None = None,
        pitch_shift: float = 0.0,
    ) -> SynthesisResult:
        """Texts -> waveforms and mels.

        Args:
            texts: one string or a list (each non-empty, in the model's vocabulary).
            sampler: a ``Sampler``, a name from ``conf/sampler`` (``"dpmpp_2m"``, ``"heun"``...), or None
                for the checkpoint's sampler. steps: grid intervals (None = the sampler's).
            guidance: classifier-free guidance scale ``x_u + s (x_c - x_u)`` (1 = off).
            seed: an int (each item's noise from this seed: an item's output depends only on its text and
                the seed, not on batch size or position), one seed per item, or None (fresh noise).
            length_scale: > 1 slower. temperature: scale of the starting noise (None = the model's).
            batch_size: texts generated together. durations: frames per token per item (overrides the
                duration predictor). speaker: a speaker id (or one per item) for multi-speaker models.
            voice: for voice models (+recipe=voices): a folder of reference clips, an audio file, a ``.pt``
                latent (``python -m tortoise_lite.voices``), a name in ``voices_dir`` or a trained voice,
                ``"a+b"`` (a blend: the mean latent), a list of clip paths, or a latent tensor (voice_dim,).
                None = the model's learned average voice. Other models refuse a voice (VoiceError).
            voice_guidance: guidance scale of the voice alone (None = ``guidance``).
            pitch_shift: semitones added to the predicted pitch (models trained with ``model.pitch=true``;
                others ignore it).
        Returns:
            :class:`SynthesisResult` (wavs, mels, timings, real-time factor).
        """
        texts = self.check_texts(texts)
        resolved = self.resolve_voice(voice)  # bad clips fail before any compute
        _sync(self.device)
        t0 = time.perf_counter()
        mels, wrapper = self.generate_mels(
            texts,
            sampler,
            steps,
            guidance,
            seed,
            length_scale,
            temperature,
            batch_size,
            durations,
            speaker,
            voice=resolved,
            voice_guidance=voice_guidance,
            pitch_shift=pitch_shift,
        )
        _sync(self.device)
        t1 = time.perf_counter()
        wavs = self.vocode(mels)
        _sync(self.device)
        t2 = time.perf_counter()
        return SynthesisResult(
            texts=texts,
            wavs=wavs,
            mels=mels,
            sample_rate=self.sample_rate,
            mel_spec=self.mel_spec,
            nfe=wrapper.nfe,
            sampler=wrapper.name,
            steps=int(steps or wrapper.steps),
            acoustic_seconds=t1 - t0,
            vocoder_seconds=t2 - t1,
            extra={"voice": resolved.description} if resolved is not None else {},
        )

    # -----------------------------------------------------------------------------------------------
    # long-form reading (tortoise_lite/reading)
    # -----------------------------------------------------------------------------------------------
    def read(
        self, text: str, out_dir: str | os.PathLike | None = None, regenerate: Any = None, **kwargs: Any
    ):
        """Read a passage: normalize, split into segments, generate in batches (one voice, one seed schedule),
        join with pauses that follow the punctuation. With ``out_dir``: ``segment_NNNN.wav``,
        ``combined.wav`` and ``manifest.json``; ``regenerate=[3, 7]`` makes new takes of those segments only.
        Keyword arguments: :class:`tortoise_lite.reading.Reader` (``preset``, ``sampler``, ``steps``,
        ``guidance``, ``candidates``, ``scorer``, ``seed``, ``speaker``, ``voice``, ``voice_guidance``,
        ``batch_size``, ``max_chars``,
        ``pauses``, ``unknown``, ``progress``...). Returns a :class:`tortoise_lite.reading.ReadingResult`.
        """
        from tortoise_lite.reading import Reader

        return Reader(self, **kwargs).read(text, out_dir=out_dir, regenerate=regenerate)

    def stream(self, text: str, **kwargs: Any):
        """Yield :class:`tortoise_lite.reading.StreamChunk` s (``chunk.wav``: a segment and its pause) as soon
        as each is generated; the same keyword arguments and the same audio as :meth:`read`."""
        from tortoise_lite.reading import Reader

        return Reader(self, **kwargs).stream(text)
