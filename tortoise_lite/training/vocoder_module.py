"""Training of the Vocos-style vocoder (``tortoise_lite.vocoders.VocosVocoder``) with Lightning.

Two trainers: ``VocoderGANModule`` (learned phase; GAN + mel + MR-STFT losses, ``conf/recipe/vocoder.yaml``)
and, for ``generator.phase=pghi``, ``VocoderMagnitudeModule`` (magnitude regression only; the phase comes
from phase-gradient integration at synthesis, ``conf/recipe/vocoder_pghi.yaml``).

Entry for the training app: ``build_and_fit(cfg) -> Path`` (the written ``vocoder.pt``). ``cfg`` is the
whole training config (``vocoder_recipe`` section of ``conf/recipe/vocoder.yaml``; top-level
``ckpt_path=last`` resumes a killed run from ``<output_dir>/checkpoints/last.ckpt``) or just the section:

    mel:        MelSpec config (``_target_`` node, preset name, or dict of fields)
    generator:  VocosVocoder keyword arguments (dim, intermediate_dim, num_layers, mel_prior, phase, ...)
    init_from:  optional vocoder checkpoint to fine-tune (its MelSpec must equal ``mel``)
    num_threads: torch intra-op threads (null = torch's default)
    data:       corpus (``tortoise_lite.data.corpora`` name + generator args; default: the
                ``synthetic_speech`` corpus, validation on renderings of its held-out prompts)
                | wavs (folder, list of paths or glob) | pairs: dotted path of a callable returning a
                sequence of (mel (n_mels, T), wav (S,)) pairs (ground-truth-aligned mels from an acoustic
                model, for fine-tuning: ``tortoise_lite.training.aligned_mels.speech_pairs``) called with
                ``mel_spec=`` (the vocoder's, to check against) and the keyword arguments ``pairs_args``;
                segment_frames, batch_size, val_items, val_seconds, ...
    gan:        loss weights (mel, MR-STFT, adversarial, feature matching), learning rate, discriminator
                sizes, pretrain_steps (reconstruction-only batches first), gan_every (GAN batch period)
    magnitude:  with generator.phase=pghi: lr, betas, lr_decay, mel_coeff, sc_coeff
    trainer:    lightning.Trainer keyword arguments (max_time, max_steps, accelerator, ...) and
                checkpoint_every_minutes (how often last.ckpt is refreshed)
    output_dir: where vocoder.pt, Lightning checkpoints and logs go

Manual optimization. Lightning counts every optimizer step in ``global_step`` (one per reconstruction
batch, two per GAN batch), so ``trainer.max_steps`` is not a batch count; ``batches_seen`` is.
"""

from __future__ import annotations

import glob
import importlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tortoise_lite.audio.io import load_audio
from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.data.corpora import Corpus, get_corpus
from tortoise_lite.training.checkpoint_io import AtomicCheckpointIO, remove_stale_temporaries
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


def _item_rng(seed: int, index: int) -> random.Random:
    """The generator of stream item ``index``: the same segment in every process, worker and resumed run."""
    return random.Random(int(seed) * 1_000_003 + int(index))


class WavSegments(Dataset):
    """Random fixed-length waveform segments ``(segment_frames * hop,)`` from in-memory utterances.

    ``len`` is ``items_per_epoch``; item ``index`` (any non-negative integer: :class:`SegmentStream`
    numbers the items of the whole run) is a random utterance and offset drawn from a generator seeded
    by ``(seed, index)``, so a resumed run trains on exactly the segments an uninterrupted one would
    (shorter utterances are zero-padded). The mel is computed from the segment in the training step.
    """

    def __init__(
        self,
        wavs: Sequence[torch.Tensor],
        mel_spec: MelSpec,
        segment_frames: int,
        items_per_epoch: int,
        seed: int = 0,
    ):
        if not wavs:
            raise ValueError("no training audio: the wav list is empty")
        self.wavs, self.length = list(wavs), mel_spec.num_samples(segment_frames)
        self.items_per_epoch, self.seed = items_per_epoch, int(seed)

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = _item_rng(self.seed, index)
        wav = self.wavs[rng.randrange(len(self.wavs))]
        if wav.shape[-1] <= self.length:
            return F.pad(wav, (0, self.length - wav.shape[-1]))
        start = rng.randrange(0, wav.shape[-1] - self.length)
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
        seed: int = 0,
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
        self.pairs, self.mel_spec, self.seed = list(pairs), mel_spec, int(seed)
        self.frames, self.items_per_epoch = segment_frames, items_per_epoch
        self.mel_frames = mel_spec.num_frames(mel_spec.num_samples(segment_frames))

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = _item_rng(self.seed, index)  # as WavSegments: item `index` of the run is always the same
        mel, wav = self.pairs[rng.randrange(len(self.pairs))]
        hop = self.mel_spec.hop
        last = max(0, min(mel.shape[1] - self.mel_frames, wav.shape[-1] // hop - self.frames))
        t = rng.randint(0, last)
        m = mel[:, t : t + self.mel_frames]
        w = wav[t * hop : (t + self.frames) * hop]
        # Pad with the log floor (silence) / zeros when an utterance is shorter than a segment.
        m = F.pad(m, (0, self.mel_frames - m.shape[1]), value=math.log(self.mel_spec.log_floor))
        return m, F.pad(w, (0, self.frames * hop - w.shape[-1]))


class SegmentStream:
    """Batch sampler of the vocoder's training stream: batch ``n`` of the run holds items
    ``n * batch_size ... (n + 1) * batch_size - 1`` (each a segment drawn by its own index).

    Every ``iter()`` starts at batch ``trained()`` (the module's ``batches_seen``, restored from the
    checkpoint) and runs to the end of that epoch of ``batches_per_epoch`` batches; ``len()`` is a whole
    epoch, as Lightning expects of a resumable loader (it counts the batches of the epoch it restored as
    done). A run killed and resumed thus trains on the same batches in the same order as one that never
    stopped. No ``batch_size``/``sampler`` attributes: Lightning leaves such a sampler alone.
    """

    def __init__(self, batches_per_epoch: int, batch_size: int, trained: Callable[[], int]) -> None:
        if batches_per_epoch < 1:
            raise ValueError(
                f"data.items_per_epoch gives {batches_per_epoch} batches of {batch_size}: raise items_per_epoch"
            )
        self.batches_per_epoch, self.items_per_batch, self.trained = batches_per_epoch, batch_size, trained

    def __iter__(self):
        start = int(self.trained())
        end = (start // self.batches_per_epoch + 1) * self.batches_per_epoch
        b = self.items_per_batch
        return iter([list(range(n * b, (n + 1) * b)) for n in range(start, end)])

    def __len__(self) -> int:
        return self.batches_per_epoch


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


def corpus_wavs(
    mel_spec: MelSpec, corpus: Mapping[str, Any] | None = None
) -> tuple[list[torch.Tensor], Corpus]:
    """The embedded corpus' training utterances ``(S,)`` at the MelSpec's rate, and the ``Corpus``.

    ``corpus``: ``name`` (default ``synthetic_speech``) plus that generator's keyword arguments
    (``n_utterances``, ``seed``, ``cache_dir``, ...); same settings = same cached corpus as the
    text-to-mel recipes, so the vocoder learns the audio the acoustic model is trained on.
    """
    kwargs = dict(corpus or {})
    name = kwargs.pop("name", "synthetic_speech")
    kwargs.setdefault("progress", False)
    c = get_corpus(name, mel=mel_spec, **kwargs)
    return [load_audio(item.audio, mel_spec.sample_rate) for item in c.items()], c


def heldout_speech(corpus: Corpus, mel_spec: MelSpec, n: int | None = None) -> list[torch.Tensor]:
    """eSpeak NG renderings ``(S,)`` of the corpus' held-out prompts (never in its training items).

    Voices, rates and pitches cycle through the corpus settings (deterministic), and the text is
    normalized by the same phoneme tokenizer the corpus generator used, so these are in-domain audio
    for unseen sentences.
    """
    from tortoise_lite.audio.io import resample
    from tortoise_lite.text import espeak
    from tortoise_lite.text.tokenizers import PhonemeTokenizer

    settings = corpus.settings
    if "voices" not in settings:
        raise ValueError(f"{corpus.root}: held-out renderings need an eSpeak corpus (synthetic_speech)")
    prompts = corpus.heldout_prompts()[:n] if n is not None else corpus.heldout_prompts()
    tokenizer = PhonemeTokenizer(voice=settings.get("phoneme_voice", "en-us"))
    voices, rates, pitches = settings["voices"], settings["rates"], settings["pitches"]
    out = []
    for i, text in enumerate(prompts):
        syn = espeak.synthesize(
            tokenizer.normalize(text),
            voices[i % len(voices)],
            rates[i % len(rates)],
            pitches[i % len(pitches)],
        )
        wav = resample(syn.float_audio, syn.sample_rate, mel_spec.sample_rate)
        out.append(torch.from_numpy(wav.copy()))
    return out


def _resolve_callable(spec: str | Callable) -> Callable:
    if callable(spec):
        return spec
    module, _, name = str(spec).rpartition(".")
    if not module:
        raise ValueError(f"data.pairs={spec!r}: expected a dotted path 'package.module.function'")
    return getattr(importlib.import_module(module), name)


# ----- losses that need no discriminator ---------------------------------------------------------------------


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Parallel WaveGAN).

    Magnitudes at several window lengths constrain the phase that one resolution leaves free, so this
    reconstruction loss alone already gives a coherent waveform; it costs a few FFTs per batch, a small
    fraction of a discriminator pass. ``fake``, ``real``: ``(B, S)``.
    """

    def __init__(self, resolutions: Sequence[Sequence[int]] = ((512, 128), (1024, 256), (2048, 512))):
        super().__init__()
        self.resolutions = [(int(n), int(h)) for n, h in resolutions]
        for n, _ in self.resolutions:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros(())
        for n_fft, hop in self.resolutions:
            window = getattr(self, f"window_{n_fft}")
            kw = dict(n_fft=n_fft, hop_length=hop, window=window, return_complex=True)
            x = torch.stft(fake, **kw).abs().clamp_min(1e-7)
            y = torch.stft(real, **kw).abs().clamp_min(1e-7)
            sc = torch.linalg.vector_norm(y - x, dim=(1, 2)) / torch.linalg.vector_norm(y, dim=(1, 2))
            total = total + sc.mean() + (x.log() - y.log()).abs().mean()
        return total / len(self.resolutions)


# ----- the LightningModule -----------------------------------------------------------------------------------


class VocoderModule(L.LightningModule):
    """What both vocoder trainers share: batches, validation (``val/mel_l1`` of the re-analysed output)
    and the plain-tensor generator copy in every checkpoint.

    Batches: wav ``(B, S)`` (mel computed here) or ``(mel (B, n_mels, T), wav (B, S))`` pairs.
    """

    generator: VocosVocoder
    run_config: dict[str, Any]
    batches_seen: int

    @property
    def mel_spec(self) -> MelSpec:
        return self.generator.mel_spec

    def _mel_wav(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, (tuple, list)):
            mel, wav = batch
            return mel, wav
        return self.mel_spec(batch), batch

    @staticmethod
    def _batch_size(batch) -> int:
        return (batch[1] if isinstance(batch, (tuple, list)) else batch).shape[0]

    def training_step(self, batch, batch_idx: int) -> None:
        out = self.losses(batch)
        # d_loss / adv / fm exist only on GAN batches: log them separately so their means stay meaningful.
        self.log_dict(
            {f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=self._batch_size(batch)
        )

    def losses(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

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


class VocoderMagnitudeModule(VocoderModule):
    """Trains a ``phase="pghi"`` generator: regression of its magnitude on the true STFT magnitude.

    The phase is not learned (phase-gradient integration + Griffin-Lim projections at synthesis), so no
    discriminator and no inverse STFT is needed in training: a batch costs about a tenth of a GAN batch.
    Loss per batch, with ``X`` the STFT of the audio and ``M`` the predicted magnitude (both ``(B, F, T)``):
    ``L1(log max(M, floor), log max(|X|, floor)) + mel_coeff * L1(log-mel of M, input mel)
    + sc_coeff * ||X| - M|_F / ||X||_F`` (floor: the MelSpec's ``log_floor``).
    The learning rate decays by ``lr_decay`` per step.
    """

    def __init__(
        self,
        generator: VocosVocoder,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.8, 0.9),
        mel_coeff: float = 1.0,
        sc_coeff: float = 1.0,
        lr_decay: float = 1.0,
        grad_clip: float = 10.0,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if generator.arch.get("phase") != "pghi":
            raise ValueError("VocoderMagnitudeModule trains generators with phase='pghi' only")
        self.automatic_optimization = False
        self.generator = generator
        self.lr, self.betas, self.lr_decay, self.grad_clip = lr, tuple(betas), lr_decay, grad_clip
        self.mel_coeff, self.sc_coeff = mel_coeff, sc_coeff
        self.run_config = dict(run_config or {})
        self.batches_seen = 0
        self.register_buffer("filterbank", generator.mel_spec.filterbank(), persistent=False)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.generator.parameters(), lr=self.lr, betas=self.betas)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)]

    def losses(self, batch) -> dict[str, torch.Tensor]:
        """One optimizer step on a batch; returns the detached losses."""
        ms = self.mel_spec
        mel, wav = self._mel_wav(batch)
        with torch.no_grad():
            target = ms.stft(wav)[..., : mel.shape[-1]].abs()
        log_mag = self.generator.log_magnitude(mel)
        floor = math.log(ms.log_floor)
        mag_loss = F.l1_loss(log_mag.clamp_min(floor), target.clamp_min(ms.log_floor).log())
        magnitude = log_mag.exp()
        mel_loss = F.l1_loss(ms.log(self.filterbank @ magnitude.pow(ms.power)), mel)
        sc = torch.linalg.vector_norm(target - magnitude) / torch.linalg.vector_norm(target).clamp_min(1e-8)
        loss = mag_loss + self.mel_coeff * mel_loss + self.sc_coeff * sc
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        self.lr_schedulers().step()
        self.batches_seen += 1
        return {
            "loss": loss.detach(),
            "mag_loss": mag_loss.detach(),
            "mel_loss": mel_loss.detach(),
            "sc_loss": sc.detach(),
        }


class VocoderGANModule(VocoderModule):
    """Trains ``generator`` against a multi-period and a multi-resolution discriminator (manual optimization).

    Every batch: reconstruction loss ``mel_coeff * L1(log-mel) + mrstft_coeff * MR-STFT``.
    From batch ``pretrain_steps`` on, every ``gan_every``-th batch also takes one discriminator step and
    adds ``adv(MPD) + mrd_coeff * adv(MRD) + fm_coeff * (FM(MPD) + mrd_coeff * FM(MRD))`` (hinge GAN) to
    that batch's generator loss. On a CPU the discriminators cost ~20x the generator, so ``gan_every > 1``
    keeps most of a short budget on cheap reconstruction steps; use ``gan_every=1`` on a GPU (as Vocos).

    Both learning rates decay by ``lr_decay`` per own optimizer step (1.0 = constant).

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
        mrstft_coeff: float = 0.0,
        mrstft_resolutions: Sequence[Sequence[int]] = ((512, 128), (1024, 256), (2048, 512)),
        mrd_coeff: float = 1.0,
        fm_coeff: float = 1.0,
        pretrain_steps: int = 0,
        gan_every: int = 1,
        lr_decay: float = 1.0,
        grad_clip: float = 1000.0,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if gan_every < 1:
            raise ValueError(f"gan.gan_every must be >= 1 (1 = a GAN step on every batch), got {gan_every}")
        self.automatic_optimization = False
        self.generator = generator
        self.mpd = mpd or MultiPeriodDiscriminator()
        self.mrd = mrd or MultiResolutionDiscriminator()
        self.mrstft = MultiResolutionSTFTLoss(mrstft_resolutions)
        self.lr, self.betas = lr, tuple(betas)
        self.mel_coeff, self.mrstft_coeff = mel_coeff, mrstft_coeff
        self.mrd_coeff, self.fm_coeff = mrd_coeff, fm_coeff
        self.pretrain_steps, self.gan_every, self.grad_clip = pretrain_steps, gan_every, grad_clip
        self.lr_decay = lr_decay
        self.run_config = dict(run_config or {})
        self.batches_seen = 0

    def configure_optimizers(self):
        opt_g = torch.optim.AdamW(self.generator.parameters(), lr=self.lr, betas=self.betas)
        opt_d = torch.optim.AdamW(
            list(self.mpd.parameters()) + list(self.mrd.parameters()), lr=self.lr, betas=self.betas
        )
        # Exponential decay per generator (resp. discriminator) step: a time-limited run does not know its
        # step count in advance, which a cosine schedule would need.
        sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=self.lr_decay)
        sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=self.lr_decay)
        return [opt_g, opt_d], [sch_g, sch_d]

    def gan_step_now(self) -> bool:
        """Whether the current batch takes a discriminator step and adversarial generator losses."""
        return self.batches_seen >= self.pretrain_steps and (
            (self.batches_seen - self.pretrain_steps) % self.gan_every == 0
        )

    def losses(self, batch) -> dict[str, torch.Tensor]:
        """One training batch: optimizer steps and the detached losses (for logging and tests)."""
        mel, wav = self._mel_wav(batch)
        fake = self.generator.synthesize(mel)
        n = min(fake.shape[-1], wav.shape[-1])
        fake, wav = fake[..., :n], wav[..., :n]
        gan = self.gan_step_now()
        out: dict[str, torch.Tensor] = {}
        opt_g, opt_d = self.optimizers()
        if gan:
            real_p, _ = self.mpd(wav)
            fake_p, _ = self.mpd(fake.detach())
            real_r, _ = self.mrd(wav)
            fake_r, _ = self.mrd(fake.detach())
            d_loss = discriminator_loss(real_p, fake_p) + self.mrd_coeff * discriminator_loss(real_r, fake_r)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self.clip_gradients(opt_d, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
            opt_d.step()
            self.lr_schedulers()[1].step()
            out["d_loss"] = d_loss.detach()
        mel_loss = F.l1_loss(self.mel_spec(fake), self.mel_spec(wav))
        g_loss = self.mel_coeff * mel_loss
        if self.mrstft_coeff:
            mrstft = self.mrstft(fake, wav)
            g_loss = g_loss + self.mrstft_coeff * mrstft
            out["mrstft_loss"] = mrstft.detach()
        if gan:
            with torch.no_grad():  # real features are targets only: no graph needed
                _, fmap_rp = self.mpd(wav)
                _, fmap_rr = self.mrd(wav)
            fake_p, fmap_fp = self.mpd(fake)
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
        self.lr_schedulers()[0].step()
        self.batches_seen += 1
        out["mel_loss"], out["g_loss"] = mel_loss.detach(), g_loss.detach()
        return out


class TimedLastCheckpoint(L.Callback):
    """Rewrites ``path`` (atomically) every ``minutes`` of training, so a killed run loses at most that.

    Lightning's ``ModelCheckpoint(train_time_interval=...)`` does nothing under manual optimization
    (Lightning 2.6 only honours ``every_n_train_steps`` there, and a GAN batch advances ``global_step``
    by 2, so step multiples can be skipped).
    """

    def __init__(self, path: str | os.PathLike, minutes: float) -> None:
        self.path, self.seconds = Path(path), 60.0 * float(minutes)
        self._last = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if time.monotonic() - self._last >= self.seconds:
            save_lightning_checkpoint(trainer, self.path)
            self._last = time.monotonic()


def save_lightning_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """The full (resumable) trainer state to ``path``; atomic through the trainer's ``AtomicCheckpointIO``
    (a kill never leaves half a file)."""
    trainer.save_checkpoint(path, weights_only=False)


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


def _resume_path(ckpt_path: str | None, ckpt_dir: Path) -> str | None:
    """``None`` (fresh run; refuses to overwrite a run), ``"last"`` (the newer of ``last.ckpt`` and
    ``on_exception.ckpt``, or a fresh run when neither exists) or a ``.ckpt`` path."""
    existing = [p for p in (ckpt_dir / "last.ckpt", ckpt_dir / "on_exception.ckpt") if p.is_file()]
    if ckpt_path is None:
        if existing:
            raise FileExistsError(
                f"{ckpt_dir.parent} already holds a vocoder run ({existing[0]}): add ckpt_path=last to resume "
                "it, or choose another output_dir"
            )
        return None
    if ckpt_path == "last":
        return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist (use ckpt_path=last to resume)")
    return str(path)


def _gan_module(generator: VocosVocoder, gan: Mapping[str, Any], cfg: Mapping[str, Any]) -> VocoderGANModule:
    """The GAN trainer from the recipe's ``gan`` section."""
    return VocoderGANModule(
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
        mrstft_coeff=float(gan.get("mrstft_coeff", 0.0)),
        mrstft_resolutions=tuple(
            tuple(r) for r in gan.get("mrstft_resolutions", ((512, 128), (1024, 256), (2048, 512)))
        ),
        mrd_coeff=float(gan.get("mrd_coeff", 1.0)),
        fm_coeff=float(gan.get("fm_coeff", 1.0)),
        pretrain_steps=int(gan.get("pretrain_steps", 0)),
        gan_every=int(gan.get("gan_every", 1)),
        lr_decay=float(gan.get("lr_decay", 1.0)),
        run_config=cfg,
    )


def _magnitude_module(
    generator: VocosVocoder, mag: Mapping[str, Any], cfg: Mapping[str, Any]
) -> VocoderMagnitudeModule:
    """The magnitude-regression trainer (``generator.phase=pghi``) from the recipe's ``magnitude`` section."""
    return VocoderMagnitudeModule(
        generator,
        lr=float(mag.get("lr", 1e-3)),
        betas=tuple(mag.get("betas", (0.8, 0.9))),
        mel_coeff=float(mag.get("mel_coeff", 1.0)),
        sc_coeff=float(mag.get("sc_coeff", 1.0)),
        lr_decay=float(mag.get("lr_decay", 1.0)),
        run_config=cfg,
    )


def build_and_fit(cfg: Mapping[str, Any] | Any) -> Path:
    """Train (or fine-tune) a vocoder as configured; return the path of the written ``vocoder.pt``.

    ``cfg``: the whole training config (its ``vocoder_recipe`` section, top-level ``ckpt_path`` =
    ``last`` to resume a killed run) or just the section. See the module doc and
    ``conf/recipe/vocoder.yaml`` for the keys.
    """
    if "vocoder_recipe" in cfg:  # the whole training config: resolve only what the vocoder uses
        ckpt_arg = cfg.get("ckpt_path")
        cfg = dict(_to_plain(cfg["vocoder_recipe"]))
        ckpt_arg = cfg.get("resume_from") or ckpt_arg
    else:
        cfg = dict(_to_plain(cfg))
        ckpt_arg = cfg.get("resume_from")
    out_dir = Path(cfg.get("output_dir") or "outputs/vocoder").expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    resume = _resume_path(ckpt_arg, ckpt_dir)
    if cfg.get("num_threads"):
        # Intra-op threads: more threads than cores only adds contention on a shared CPU.
        torch.set_num_threads(int(cfg["num_threads"]))
    L.seed_everything(int(cfg.get("seed", 1234)), workers=True, verbose=False)
    random.seed(int(cfg.get("seed", 1234)))

    mel_spec = _mel_spec_from(cfg.get("mel"))
    if cfg.get("init_from"):
        if not Path(str(cfg["init_from"])).expanduser().exists():
            from tortoise_lite.vocoders.loading import VocoderLoadError

            raise VocoderLoadError(
                f"init_from={cfg['init_from']}: no such vocoder checkpoint; train the vocoder to fine-tune first "
                "(e.g. +recipe=vocoder_pghi) or pass vocoder_recipe.init_from=PATH"
            )
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
    val_seconds = float(data.get("val_seconds", 3.0))
    hop = mel_spec.hop
    seed = int(cfg.get("seed", 1234))
    if data.get("pairs"):
        pairs = list(
            _resolve_callable(data["pairs"])(mel_spec=mel_spec, **dict(data.get("pairs_args") or {}))
        )
        val_pairs, train_pairs = pairs[:n_val], pairs[n_val:] or pairs
        train_set: Dataset = MelWavPairs(train_pairs, mel_spec, segment_frames, items, seed=seed)
        val_frames = int(val_seconds / mel_spec.frame_seconds)
        val_set: Any = MelWavPairs(val_pairs, mel_spec, val_frames, len(val_pairs))
    elif data.get("wavs"):
        wavs = [load_audio(p, mel_spec.sample_rate) for p in list_wavs(data["wavs"])]
        order = list(range(len(wavs)))
        random.Random(0).shuffle(order)
        n_val = min(n_val, max(0, len(wavs) - 1))
        val_wavs = [wavs[i] for i in order[:n_val]]
        train_set = WavSegments([wavs[i] for i in order[n_val:]], mel_spec, segment_frames, items, seed=seed)
    else:
        # Training = the corpus items; validation = renderings of its held-out prompts (unseen sentences).
        wavs, corpus = corpus_wavs(mel_spec, data.get("corpus"))
        train_set = WavSegments(wavs, mel_spec, segment_frames, items, seed=seed)
        val_wavs = heldout_speech(corpus, mel_spec, n_val) if n_val else []
    if not data.get("pairs"):
        val_len = int(val_seconds * mel_spec.sample_rate)
        val_set = [w[:val_len][: min(w.shape[-1], val_len) // hop * hop] for w in val_wavs]

    module: VocoderModule
    if generator.arch.get("phase") == "pghi":
        module = _magnitude_module(generator, dict(cfg.get("magnitude") or {}), cfg)
    else:
        module = _gan_module(generator, dict(cfg.get("gan") or {}), cfg)

    batch_size = int(data.get("batch_size", 8))
    workers = int(data.get("num_workers", 0))
    stream = SegmentStream(items // batch_size, batch_size, trained=lambda: module.batches_seen)
    # Own generators: a DataLoader's iter() otherwise draws a seed from the global torch RNG.
    train_loader = DataLoader(
        train_set,
        batch_sampler=stream,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = (
        DataLoader(val_set, batch_size=1, num_workers=0, generator=torch.Generator().manual_seed(seed))
        if len(val_set)
        else None
    )

    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    trainer_kwargs = dict(cfg.get("trainer") or {})
    ckpt_minutes = float(trainer_kwargs.pop("checkpoint_every_minutes", 5.0))
    trainer_kwargs.setdefault("default_root_dir", str(out_dir))
    trainer_kwargs.setdefault("logger", False)
    trainer_kwargs.setdefault("enable_model_summary", False)
    callbacks = [
        # Saves nothing itself (see TimedLastCheckpoint); present so Lightning adds no default checkpointing.
        ModelCheckpoint(dirpath=ckpt_dir, save_last=False, save_top_k=0, every_n_epochs=0),
        TimedLastCheckpoint(ckpt_dir / "last.ckpt", ckpt_minutes),
        OnExceptionCheckpoint(dirpath=ckpt_dir, filename="on_exception"),
    ]
    trainer_kwargs.setdefault("plugins", [AtomicCheckpointIO()])
    trainer = L.Trainer(callbacks=callbacks, **trainer_kwargs)
    if trainer.is_global_zero:  # half-written files of saves a kill interrupted (never read: not *.ckpt)
        remove_stale_temporaries(ckpt_dir)
    # With OnExceptionCheckpoint, Lightning treats ckpt_path=None as "last" and warns; _resume_path has
    # already refused a fresh run over old checkpoints, so there is nothing to load. (Lightning's Timer
    # state is in every checkpoint, so a resumed run keeps the same max_time budget.)
    warnings.filterwarnings("ignore", message=r".*ckpt_path=None\)` was called without a model.*")
    # SegmentStream continues the batch stream from the restored batches_seen: Lightning's warning about
    # non-resumable loaders does not apply.
    warnings.filterwarnings(
        "ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*"
    )
    warnings.filterwarnings(
        "ignore", message=r'.*ckpt_path="last"\) is set, but there is no last checkpoint.*'
    )
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    # A final last.ckpt (max_time / max_steps ends between the periodic saves), then the inference file.
    save_lightning_checkpoint(trainer, ckpt_dir / "last.ckpt")
    return save_checkpoint(out_dir / "vocoder.pt", module.generator.cpu().eval(), cfg)
