"""Vocoders: log-mel ``(B, n_mels, frames)`` -> waveform ``(B, samples)``, each carrying its MelSpec.

* ``GriffinLim``: training-free default (NNLS mel inversion + fast Griffin-Lim).
* ``VocosVocoder``: trainable ConvNeXt + iSTFT vocoder (train it with ``tortoise_lite.training.vocoder_module``).
* ``HiFiGANVocoder`` / ``BigVGANVocoder`` / upstream Vocos: run checkpoints users already have
  (``load_vocoder(path)`` recognizes the formats).
"""

from tortoise_lite.vocoders.base import Vocoder, VocoderInputError, as_mel_spec
from tortoise_lite.vocoders.bigvgan import BigVGANVocoder
from tortoise_lite.vocoders.griffin_lim import GriffinLim, fast_griffin_lim, mel_to_linear
from tortoise_lite.vocoders.hifigan import HiFiGANVocoder
from tortoise_lite.vocoders.loading import (
    VocoderLoadError,
    detect_format,
    load_bigvgan,
    load_hifigan,
    load_vocoder,
    load_vocos,
    save_checkpoint,
)
from tortoise_lite.vocoders.vocos import VocosVocoder

__all__ = [
    "BigVGANVocoder",
    "GriffinLim",
    "HiFiGANVocoder",
    "Vocoder",
    "VocoderInputError",
    "VocoderLoadError",
    "VocosVocoder",
    "as_mel_spec",
    "detect_format",
    "fast_griffin_lim",
    "load_bigvgan",
    "load_hifigan",
    "load_vocoder",
    "load_vocos",
    "mel_to_linear",
    "save_checkpoint",
]
