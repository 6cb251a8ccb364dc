"""Helpers of the training-app tests: compose the real Hydra config and shrink it (lightning-hydra-template
style): tiny corpus and model, a few steps, no sampling unless asked, everything under tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tortoise_lite.paths import config_dir

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# Small corpora (shared through the session cache), a tiny model, two steps.
TINY = [
    "data.batch_size=4",
    "data.progress=false",
    "trainer.max_steps=2",
    "trainer.max_time=null",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "checkpoint.every_n_train_steps=2",
    "samples.enabled=false",
    "samples.n_prompts=1",
    "samples.steps=2",
    "vocoder.n_iter=4",
    "vocoder.nnls_iters=4",
    "optim.scheduler.warmup_steps=1",
    "logger=csv",
]
TINY_DATA = {
    "synthetic_speech": ["data.source.n_utterances=12", "data.source.n_heldout=2", "data.val_fraction=0.2"],
    "synthetic_voices": [
        "data.source.n_utterances=12",
        "data.source.voices=[en-us,en-us+f3,en-us+m3]",
        "data.source.utterances_per_heldout_voice=1",
        "data.source.n_heldout=2",
        "data.val_fraction=0.2",
        "data.references=2",
        "model.voice_dim=16",
        "model.voice_channels=16",
    ],
    "tones": ["data.source.n_sequences=12", "data.source.n_heldout=2", "data.val_fraction=0.2"],
    "disk": ["data.val_fraction=0.25"],
}
RECIPE_DATA = {
    "speech": "synthetic_speech",
    "speech2d": "synthetic_speech",
    "text_to_audio": "synthetic_speech",
    "tones": "tones",
    "voices": "synthetic_voices",
    "ljspeech": "disk",
    "folder": "disk",
}
# Tiny model sizes per model config (keys of conf/model/*.yaml).
TINY_ENCODER = ["text.encoder.dim=32", "text.encoder.depth=1", "text.encoder.heads=2"]
TINY_MODEL = {
    "unet1d": [
        "model.cond_dim=32",
        "model.duration_hidden=32",
        "model.denoiser.channels=[16,32]",
        "model.denoiser.attn_depth=1",
        "model.denoiser.heads=2",
        "model.denoiser.groups=4",
        *TINY_ENCODER,
    ],
    "unet2d": [
        "model.cond_dim=32",
        "model.duration_hidden=32",
        "model.denoiser.channels=[8,16]",
        "model.denoiser.attn_dim=32",
        "model.denoiser.attn_depth=1",
        "model.denoiser.heads=2",
        "model.denoiser.groups=4",
        *TINY_ENCODER,
    ],
    "unet1d_xattn": [
        "model.cond_dim=32",
        "model.duration_hidden=32",
        "model.denoiser.channels=[16,32]",
        "model.denoiser.attn_depth=1",
        "model.denoiser.heads=2",
        "model.denoiser.groups=4",
    ],
}
RECIPE_MODEL = {
    "speech": "unet1d",
    "speech2d": "unet2d",
    "tones": "unet1d",
    "voices": "unet1d",
    "ljspeech": "unet1d",
    "folder": "unet1d",
    "text_to_audio": "unet1d_xattn",
}
EXTRA_SEARCHPATH = os.environ.get("TORTOISE_LITE_TEST_SEARCHPATH")  # dev only: a config overlay


def tiny_overrides(recipe: str, out: Path, extra: list[str] | None = None) -> list[str]:
    ov = [f"+recipe={recipe}", f"output_dir={out}", *TINY, *TINY_DATA[RECIPE_DATA[recipe]]]
    ov += TINY_MODEL[RECIPE_MODEL[recipe]]
    return ov + list(extra or [])


def compose_train(overrides: list[str]) -> DictConfig:
    if EXTRA_SEARCHPATH:
        overrides = [*overrides, f"hydra.searchpath=[file://{EXTRA_SEARCHPATH}]"]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


def make_wav_dataset(root: Path, layout: str, n: int = 8, sample_rate: int = 22050) -> Path:
    """A tiny real dataset on disk: harmonic tones with short texts, as LJSpeech (metadata.csv + wavs/)
    or as a folder of wav + txt pairs. Returns the path to give as ``data.root``."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    wav_dir = root / "wavs" if layout == "ljspeech" else root
    wav_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        dur = 0.6 + 0.1 * (i % 4)
        t = np.arange(int(dur * sample_rate)) / sample_rate
        f0 = 110.0 * 2 ** (i / 12)
        x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5)) * np.hanning(len(t))
        x = x + 0.003 * rng.standard_normal(len(t))
        sf.write(wav_dir / f"utt{i:03d}.wav", x.astype("float32"), sample_rate)
        text = f"{words[i % len(words)]} {words[(i * 3 + 1) % len(words)]}."
        rows.append((f"utt{i:03d}", text))
        if layout == "folder":
            (wav_dir / f"utt{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    if layout == "ljspeech":
        (root / "metadata.csv").write_text("".join(f"{i}|{t}|{t}\n" for i, t in rows), encoding="utf-8")
    return root


def subprocess_env(tmp_cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    if tmp_cache is not None:
        env["TORTOISE_LITE_CACHE"] = str(tmp_cache)
    return env


def train_tiny(out: Path, recipe: str = "speech", extra: list[str] | None = None):
    """Run the real app in-process on the tiny config; returns the RunResult."""
    from tortoise_lite.training.app import run

    return run(compose_train(tiny_overrides(recipe, out, extra)))


def fit_recording(module, data, max_steps: int):
    """Fit ``module`` on ``data`` for ``max_steps`` (CPU, no logger/checkpoints/progress bar); returns
    ``(trainer, history)`` with the logged metrics after every training batch."""
    import lightning as L

    class _Record(L.Callback):
        def __init__(self):
            self.history: list[dict[str, float]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.history.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    rec = _Record()
    trainer = L.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
        accelerator="cpu",
    )
    trainer.fit(module, data)
    return trainer, rec.history
