"""Audio: the MelSpec (the one mel definition), audio I/O, normalization statistics."""

from tortoise_lite.audio.io import AudioError, load_audio, save_wav
from tortoise_lite.audio.mel import PRESETS, MelSpec, MelSpecMismatchError
from tortoise_lite.audio.stats import MelStats

__all__ = ["AudioError", "MelSpec", "MelSpecMismatchError", "MelStats", "PRESETS", "load_audio", "save_wav"]
