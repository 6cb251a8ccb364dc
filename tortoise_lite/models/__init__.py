"""Denoisers (1-D, 2-D), building blocks, conditioning, duration/length prediction, alignment, TextToMel."""

from tortoise_lite.models.conditioning import Cond, CondEmbedder
from tortoise_lite.models.unet1d import UNet1D
from tortoise_lite.models.unet2d import UNet2D

__all__ = ["Cond", "CondEmbedder", "UNet1D", "UNet2D", "TextToMel"]


def __getattr__(name: str):
    # TextToMel pulls in diffusion/audio/text: import it lazily so `models` stays light
    if name == "TextToMel":
        from tortoise_lite.models.text_to_mel import TextToMel

        return TextToMel
    raise AttributeError(name)
