"""Zero-shot voices beside the API: reference clips -> mels (:mod:`.clips`), latents on disk
(:mod:`.latents`), and what ``voice=`` names (:mod:`.resolve`: files, folders, the voices folder, trained
voices, ``a+b`` blends). The reference encoder itself lives with the models
(:mod:`tortoise_lite.models.reference`)."""

from tortoise_lite.voice.clips import (
    AUDIO_EXTENSIONS,
    ReferenceClip,
    VoiceError,
    clip_from_audio,
    find_clips,
    load_clip,
    load_clips,
    min_reference_seconds,
    split_windows,
)
from tortoise_lite.voice.latents import (
    fingerprint,
    load_latent,
    read_latent_file,
    require_voice_model,
    save_latent,
)
from tortoise_lite.voice.resolve import (
    Voice,
    list_voices_dir,
    resolve_name,
    resolve_voice,
    trained_voices,
    voice_from_clips,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "ReferenceClip",
    "Voice",
    "VoiceError",
    "clip_from_audio",
    "find_clips",
    "fingerprint",
    "list_voices_dir",
    "load_clip",
    "load_clips",
    "load_latent",
    "min_reference_seconds",
    "read_latent_file",
    "require_voice_model",
    "resolve_name",
    "resolve_voice",
    "save_latent",
    "split_windows",
    "trained_voices",
    "voice_from_clips",
]
