"""Mel files to wav files: ``python -m tortoise_lite.vocode input=mels/ output=wavs/ [vocoder=griffin_lim] [ckpt=PATH]``.

Hydra overrides on ``conf/vocode.yaml``. ``input_mel=PRESET`` declares the MelSpec of inputs that do not
carry one (.npy files). User errors print one line and exit with status 2.
"""

from __future__ import annotations

import sys

from tortoise_lite.audio.io import AudioError
from tortoise_lite.audio.mel import MelSpecMismatchError
from tortoise_lite.vocoders.base import VocoderInputError
from tortoise_lite.vocoders.loading import VocoderLoadError

USER_ERRORS = (
    VocoderInputError,
    VocoderLoadError,
    MelSpecMismatchError,
    AudioError,
    FileNotFoundError,
    ValueError,
)


def run(cfg) -> list:
    """Build or load the vocoder from a composed config and vocode ``cfg.input`` into ``cfg.output``."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from tortoise_lite.vocoders import as_mel_spec, load_vocoder
    from tortoise_lite.vocoders.inference import vocode_files

    vocoder = load_vocoder(cfg.ckpt) if cfg.ckpt else instantiate(cfg.vocoder, _convert_="all")
    input_mel = cfg.get("input_mel")
    input_spec = None
    if input_mel is not None:
        input_mel = (
            OmegaConf.to_container(input_mel, resolve=True) if OmegaConf.is_config(input_mel) else input_mel
        )
        input_spec = (
            instantiate(input_mel)
            if isinstance(input_mel, dict) and "_target_" in input_mel
            else as_mel_spec(input_mel)
        )
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return vocode_files(vocoder, cfg.input, cfg.output, input_spec if cfg.check_mel else None, device)


def main(argv: list[str] | None = None) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tortoise_lite.paths import config_dir

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose("vocode", overrides=argv)
        written = run(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: bad configuration: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
