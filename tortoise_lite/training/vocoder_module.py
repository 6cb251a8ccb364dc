"""GAN training of the Vocos-style vocoder (``tortoise_lite.vocoders.VocosVocoder``) with Lightning.

Entry for the training app: ``build_and_fit(cfg) -> Path`` (the written ``vocoder.pt``). ``cfg`` is the
``vocoder_recipe`` section of ``conf/recipe/vocoder.yaml`` (or a whole config holding that section):

    mel:        MelSpec config (``_target_`` node, preset name, or dict of fields)
    generator:  VocosVocoder sizes (dim, intermediate_dim, num_layers)
    init_from:  optional vocoder checkpoint to fine-tune (its MelSpec must equal ``mel``)
    data:       wavs (folder, list of paths or glob) | corpus: synthetic_speech;  or pairs: dotted path of a
                callable returning a sequence of (mel (n_mels, T), wav (S,)) pairs (ground-truth-aligned
                mels from an acoustic model, for fine-tuning); segment_frames, batch_size, val_items, ...
    gan:        loss weights, learning rate, discriminator sizes, pretrain_mel_steps
    trainer:    lightning.Trainer keyword arguments (max_time, max_steps, accelerator, ...)
    output_dir: where vocoder.pt, Lightning checkpoints and logs go

Manual optimization, one discriminator step then one generator step per batch. Lightning counts every
optimizer step in ``global_step``, so ``trainer.max_steps`` is about twice the number of batches once
the GAN is on (as in Vocos).
"""

from __future__ import annotations

import glob
import importlib
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tortoise_lite.audio.io import load_audio, save_wav
from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import as_mel_spec
from tortoise_lite.vocoders.discriminators import (
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from tortoise_lite.vocoders.loading import LIGHTNING_KEY, checkpoint_dict, load_vocoder, save_checkpoint
from tortoise_lite.vocoders.vocos import VocosVocoder

# ----- data -------------------------------------------------------------------------------------------------


class WavSegments(Dataset):
    """Random fixed-length waveform segments ``(segment_frames * hop,)`` from in-memory utterances.

    ``len`` is ``items_per_epoch``; every ``__getitem__`` draws a random utterance and offset (shorter
    utterances are zero-padded). The mel is computed from the segment in the training step (batched).
    """

    def __init__(
        self, wavs: Sequence[torch.Tensor], mel_spec: MelSpec, segment_frames: int, items_per_epoch: int
    ):
        if not wavs:
            raise ValueError("no training audio: the wav list is empty")
        self.wavs, self.length = list(wavs), mel_spec.num_samples(segment_frames)
        self.items_per_epoch = items_per_epoch

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> torch.Tensor:
        wav = random.choice(self.wavs)
        if wav.shape[-1] <= self.length:
            return F.pad(wav, (0, self.length - wav.shape[-1]))
        start = random.randrange(0, wav.shape[-1] - self.length)
        return wav[start : start + self.length]


class MelWavPairs(Dataset):
    """Aligned ``(mel (n_mels, L'), wav (L * hop,))`` segments from (mel, wav) pairs, for fine-tuning on an
    acoustic model's ground-truth-aligned mels. ``L' = mel_spec.num_frames(L * hop)`` (one extra frame
    when ``center=True``)."""

    def __init__(
        self,
        pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
        mel_spec: MelSpec,
        segment_frames: int,
        items_per_epoch: int,
    ):
        if not pairs:
            raise ValueError("no (mel, wav) pairs given for fine-tuning")
        for i, (mel, wav) in enumerate(pairs):
            if mel.ndim != 2 or mel.shape[0] != mel_spec.n_mels:
                raise ValueError(
                    f"pair {i}: mel must be (n_mels={mel_spec.n_mels}, frames), got {tuple(mel.shape)}"
                )
            expected = mel_spec.num_frames(wav.shape[-1])
            if abs(mel.shape[1] - expected) > 1:
                raise ValueError(
                    f"pair {i}: mel has {mel.shape[1]} frames but its wav ({wav.shape[-1]} samples) gives {expected}; "
                    "the mels must be ground-truth aligned (same frames as the MelSpec of the audio)"
                )
        self.pairs, self.mel_spec = list(pairs), mel_spec
        self.frames, self.items_per_epoch = segment_frames, items_per_epoch
        self.mel_frames = mel_spec.num_frames(mel_spec.num_samples(segment_frames))

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        mel, wav = random.choice(self.pairs)
        hop = self.mel_spec.hop
        last = max(0, min(mel.shape[1] - self.mel_frames, wav.shape[-1] // hop - self.frames))
        t = random.randint(0, last)
        m = mel[:, t : t + self.mel_frames]
        w = wav[t * hop : (t + self.frames) * hop]
        # Pad with the log floor (silence) / zeros when an utterance is shorter than a segment.
        m = F.pad(m, (0, self.mel_frames - m.shape[1]), value=math.log(self.mel_spec.log_floor))
        return m, F.pad(w, (0, self.frames * hop - w.shape[-1]))


def list_wavs(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Wav paths from a folder (recursive ``*.wav``), a glob pattern, one file, or a list of those."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(p.rglob("*.wav"))
        elif p.is_file():
            files = [p]
        else:
            files = sorted(Path(f) for f in glob.glob(str(source), recursive=True))
        if not files:
            raise FileNotFoundError(
                f"{source}: no wav files found (expected a folder, a file or a glob pattern)"
            )
        return files
    return [f for s in source for f in list_wavs(s)]


TRAIN_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A vocoder turns a spectrogram back into a waveform.",
    "She sells sea shells by the sea shore, every summer morning.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "Peter Piper picked a peck of pickled peppers.",
    "The rain in Spain stays mainly in the plain.",
    "Numbers like forty two and nineteen eighty four are spoken too.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "Was it a car or a cat I saw, asked the confused old man?",
    "Bright lights flickered across the quiet harbour at midnight.",
)
HELDOUT_SENTENCES = (
    "Music and speech both carry pitch, rhythm and timbre.",
    "Tomorrow the weather will be cloudy with a chance of light showers.",
    "Every sample of this sentence was generated without a neural network.",
    "Can you hear the difference between the two recordings?",
)
VOICES = (("en-us", 50), ("en-us", 25), ("en", 70), ("en-us", 85))


def espeak_corpus(
    out_dir: str | os.PathLike, sentences: Sequence[str] = TRAIN_SENTENCES, voices=VOICES, rate: int = 165
) -> list[Path]:
    """Synthesize ``sentences`` x ``voices`` (voice, pitch) with eSpeak NG into ``out_dir`` (cached by name)."""
    from tortoise_lite.text import espeak

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(sentences):
        for voice, pitch in voices:
            path = out_dir / f"s{i:03d}_{voice}_p{pitch}.wav"
            if not path.exists():
                syn = espeak.synthesize(text, voice=voice, rate=rate, pitch=pitch)
                save_wav(path, syn.float_audio, syn.sample_rate)
            paths.append(path)
    return paths


def _resolve_callable(spec: str | Callable) -> Callable:
    if callable(spec):
        return spec
    module, _, name = str(spec).rpartition(".")
    if not module:
        raise ValueError(f"data.pairs={spec!r}: expected a dotted path 'package.module.function'")
    return getattr(importlib.import_module(module), name)


# ----- the LightningModule -----------------------------------------------------------------------------------


class VocoderGANModule(L.LightningModule):
    """Trains ``generator`` against a multi-period and a multi-resolution discriminator.

    Generator loss = ``mel_coeff * L1(log-mel)`` + (after ``pretrain_mel_steps`` batches)
    ``adv(MPD) + mrd_coeff * adv(MRD) + fm_coeff * (FM(MPD) + mrd_coeff * FM(MRD))``; hinge GAN losses.

    Batches: wav ``(B, S)`` (mel computed here) or ``(mel (B, n_mels, T), wav (B, S))`` pairs.
    """

    def __init__(
        self,
        generator: VocosVocoder,
        mpd: MultiPeriodDiscriminator | None = None,
        mrd: MultiResolutionDiscriminator | None = None,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.8, 0.9),
        mel_coeff: float = 45.0,
        mrd_coeff: float = 1.0,
        fm_coeff: float = 1.0,
        pretrain_mel_steps: int = 0,
        grad_clip: float = 1000.0,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.mpd = mpd or MultiPeriodDiscriminator()
        self.mrd = mrd or MultiResolutionDiscriminator()
        self.lr, self.betas = lr, tuple(betas)
        self.mel_coeff, self.mrd_coeff, self.fm_coeff = mel_coeff, mrd_coeff, fm_coeff
        self.pretrain_mel_steps, self.grad_clip = pretrain_mel_steps, grad_clip
        self.run_config = dict(run_config or {})
        self.batches_seen = 0

    @property
    def mel_spec(self) -> MelSpec:
        return self.generator.mel_spec

    def configure_optimizers(self):
        opt_g = torch.optim.AdamW(self.generator.parameters(), lr=self.lr, betas=self.betas)
        opt_d = torch.optim.AdamW(
            list(self.mpd.parameters()) + list(self.mrd.parameters()), lr=self.lr, betas=self.betas
        )
        return opt_g, opt_d

    def _mel_wav(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, (tuple, list)):
            mel, wav = batch
            return mel, wav
        return self.mel_spec(batch), batch

    def losses(self, batch, step_discriminator: bool = True) -> dict[str, torch.Tensor]:
        """One GAN step's losses (and the discriminator update when the GAN is on). For tests and logging."""
        mel, wav = self._mel_wav(batch)
        fake = self.generator.synthesize(mel)
        n = min(fake.shape[-1], wav.shape[-1])
        fake, wav = fake[..., :n], wav[..., :n]
        gan_on = self.batches_seen >= self.pretrain_mel_steps
        out: dict[str, torch.Tensor] = {}
        opt_g, opt_d = self.optimizers()
        if gan_on and step_discriminator:
            real_p, _ = self.mpd(wav)
            fake_p, _ = self.mpd(fake.detach())
            real_r, _ = self.mrd(wav)
            fake_r, _ = self.mrd(fake.detach())
            d_loss = discriminator_loss(real_p, fake_p) + self.mrd_coeff * discriminator_loss(real_r, fake_r)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.clip_gradients(opt_d, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
            opt_d.step()
            out["d_loss"] = d_loss.detach()
        mel_loss = F.l1_loss(self.mel_spec(fake), self.mel_spec(wav))
        g_loss = self.mel_coeff * mel_loss
        if gan_on:
            real_p, fmap_rp = self.mpd(wav)
            fake_p, fmap_fp = self.mpd(fake)
            real_r, fmap_rr = self.mrd(wav)
            fake_r, fmap_fr = self.mrd(fake)
            adv = generator_loss(fake_p) + self.mrd_coeff * generator_loss(fake_r)
            fm = feature_matching_loss(fmap_rp, fmap_fp) + self.mrd_coeff * feature_matching_loss(
                fmap_rr, fmap_fr
            )
            g_loss = g_loss + adv + self.fm_coeff * fm
            out["adv_loss"], out["fm_loss"] = adv.detach(), fm.detach()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        self.clip_gradients(opt_g, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        self.batches_seen += 1
        out["mel_loss"], out["g_loss"] = mel_loss.detach(), g_loss.detach()
        return out

    def training_step(self, batch, batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict(
            {f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=self._batch_size(batch)
        )

    @staticmethod
    def _batch_size(batch) -> int:
        return (batch[1] if isinstance(batch, (tuple, list)) else batch).shape[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        mel, wav = self._mel_wav(batch)
        fake = self.generator.synthesize(mel)
        n = min(fake.shape[-1], wav.shape[-1])
        self.log(
            "val/mel_l1",
            F.l1_loss(self.mel_spec(fake[..., :n]), self.mel_spec(wav[..., :n])),
            prog_bar=True,
            batch_size=wav.shape[0],
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A plain-tensor copy of the generator so `load_vocoder(ckpt)` works without Lightning or pickles.
        checkpoint[LIGHTNING_KEY] = checkpoint_dict(self.generator, self.run_config)
        checkpoint["batches_seen"] = self.batches_seen

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.batches_seen = int(checkpoint.get("batches_seen", 0))


# ----- entry point -------------------------------------------------------------------------------------------


def _to_plain(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra-core
        pass
    return cfg


def _mel_spec_from(cfg: Any) -> MelSpec:
    if isinstance(cfg, Mapping) and "_target_" in cfg:
        from hydra.utils import instantiate

        return instantiate(cfg)
    return as_mel_spec(cfg)


def _load_wavs(paths: Sequence[Path], mel_spec: MelSpec) -> list[torch.Tensor]:
    return [load_audio(p, mel_spec.sample_rate) for p in paths]


def build_and_fit(cfg: Mapping[str, Any] | Any) -> Path:
    """Train (or fine-tune) a vocoder as configured; return the path of the written ``vocoder.pt``.

    See the module doc for the config layout; defaults are those of ``conf/recipe/vocoder.yaml``.
    """
    cfg = _to_plain(cfg)
    cfg = dict(cfg.get("vocoder_recipe", cfg))
    out_dir = Path(cfg.get("output_dir") or "outputs/vocoder")
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.get("seed", 1234)), workers=True)
    random.seed(int(cfg.get("seed", 1234)))

    mel_spec = _mel_spec_from(cfg.get("mel"))
    if cfg.get("init_from"):
        generator = load_vocoder(cfg["init_from"], mel_spec=mel_spec)
        if not isinstance(generator, VocosVocoder):
            raise ValueError(
                f"init_from={cfg['init_from']}: only Vocos-style vocoders can be fine-tuned here"
            )
    else:
        generator = VocosVocoder(mel_spec, **dict(cfg.get("generator") or {}))

    data = dict(cfg.get("data") or {})
    segment_frames = int(data.get("segment_frames", 32))
    items = int(data.get("items_per_epoch", 2000))
    n_val = int(data.get("val_items", 4))
    val_seconds = float(data.get("val_seconds", 2.0))
    if data.get("pairs"):
        pairs = list(_resolve_callable(data["pairs"])())
        val_pairs, train_pairs = pairs[:n_val], pairs[n_val:] or pairs
        train_set: Dataset = MelWavPairs(train_pairs, mel_spec, segment_frames, items)
        val_frames = int(val_seconds / mel_spec.frame_seconds)
        val_set: Dataset = MelWavPairs(val_pairs, mel_spec, val_frames, len(val_pairs))
    else:
        if data.get("wavs"):
            paths = list_wavs(data["wavs"])
        elif data.get("corpus", "synthetic_speech") == "synthetic_speech":
            paths = espeak_corpus(out_dir / "corpus")
        else:
            raise ValueError(
                f"data.corpus={data.get('corpus')!r}: only 'synthetic_speech' is built in; or give data.wavs"
            )
        wavs = _load_wavs(paths, mel_spec)
        rng = random.Random(0)
        order = list(range(len(wavs)))
        rng.shuffle(order)
        n_val = min(n_val, max(0, len(wavs) - 1))
        val_wavs = [wavs[i][: int(val_seconds * mel_spec.sample_rate)] for i in order[:n_val]]
        train_set = WavSegments([wavs[i] for i in order[n_val:]], mel_spec, segment_frames, items)
        hop = mel_spec.hop
        val_set = [w[: w.shape[-1] // hop * hop] for w in val_wavs]

    batch_size = int(data.get("batch_size", 8))
    workers = int(data.get("num_workers", 0))
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=False, num_workers=workers, drop_last=True
    )
    val_loader = DataLoader(val_set, batch_size=1, num_workers=0) if len(val_set) else None

    gan = dict(cfg.get("gan") or {})
    module = VocoderGANModule(
        generator,
        mpd=MultiPeriodDiscriminator(
            tuple(gan.get("mpd_periods", (2, 3, 5, 7, 11))), tuple(gan.get("mpd_channels", (16, 32, 64, 128)))
        ),
        mrd=MultiResolutionDiscriminator(
            tuple(gan.get("mrd_fft_sizes", (1024, 512, 256))), int(gan.get("mrd_channels", 16))
        ),
        lr=float(gan.get("lr", 5e-4)),
        betas=tuple(gan.get("betas", (0.8, 0.9))),
        mel_coeff=float(gan.get("mel_coeff", 45.0)),
        mrd_coeff=float(gan.get("mrd_coeff", 1.0)),
        fm_coeff=float(gan.get("fm_coeff", 1.0)),
        pretrain_mel_steps=int(gan.get("pretrain_mel_steps", 4000)),
        run_config=cfg,
    )

    from lightning.pytorch.callbacks import ModelCheckpoint

    trainer_kwargs = dict(cfg.get("trainer") or {})
    trainer_kwargs.setdefault("default_root_dir", str(out_dir))
    trainer_kwargs.setdefault("logger", False)
    trainer_kwargs.setdefault("enable_model_summary", False)
    callbacks = [ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0)]
    trainer = L.Trainer(callbacks=callbacks, **trainer_kwargs)
    trainer.fit(module, train_loader, val_loader, ckpt_path=cfg.get("resume_from"))
    return save_checkpoint(out_dir / "vocoder.pt", module.generator.cpu().eval(), cfg)
