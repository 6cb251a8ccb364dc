"""TextToMel: text encoder + length/alignment + denoiser + diffusion objective (a plain nn.Module).

Training (``loss(batch)``):
  1. the raw log-mel is normalized with the model's MelStats -> x0 (B, n_mels, T);
  2. the text encoder gives h (B, L, D), projected to ``cond_dim``;
  3. ``aligned`` mode: h is projected to a mel-dim prior mean mu per token (Grad-TTS). Durations come
     from the batch (exact, ``Batch.durations``) or from monotonic alignment search between mu and x0;
     the prior loss is the unit-variance Gaussian NLL of x0 under the expanded mu, the duration
     predictor (on detached h) regresses log(1 + frames). The condition ``Cond.frames`` is the
     expanded mu (``aligned_features="prior"``, like Matcha/Grad-TTS) or the expanded h ("encoder").
     ``cross_attention`` mode: the condition is the token sequence h with its mask, and a length
     predictor regresses log(total frames);
  4. a voice model (``voice_dim > 0``) encodes the batch's reference clips (other utterances of the same
     voice) into a voice latent with the ``ReferenceEncoder``; the latent modulates the text features h
     (FiLM: so the prior mean, the durations and the cross-attention context follow the voice) and is added
     to the denoiser's timestep embedding. Two dropouts train the nulls: ``voice_absent_prob`` replaces the
     latent everywhere by a learned null voice (``generate`` without a voice speaks in that average voice),
     ``voice_drop_prob`` only in the denoiser (the unconditional branch of voice guidance), independently
     of the content dropout (Tortoise drops both together);
  5. the diffusion loss is the objective's masked loss of the denoiser under that condition. With
     ``prior_residual=True`` (aligned mode) the diffused data is the residual x0 - mu (mu detached), as in
     Grad-TTS / PriorGrad where the prior mean is where sampling starts: the denoiser only adds what mu
     leaves out, so details that mu already gets right (e.g. a note's pitch) cannot drift in sampling.

Generation (``generate``): durations/lengths are predicted (or given), noise is standard normal drawn per
item (per-item generators when a seed is given, in a layout that does not depend on the padded length),
the sampler integrates ``x0_fn`` (classifier-free guidance with the learned null condition in one
batched pass when ``guidance != 1``), and the result is de-normalized to raw log-mel.

Guidance with a voice (content scale ``s_c = guidance``, voice scale ``s_v = voice_guidance``), the
branches in one batched pass::

    x0 = x0(null, null_voice) + s_c (x0(text, null_voice) - x0(null, null_voice))
                              + s_v (x0(text, voice) - x0(text, null_voice))

``s_c = s_v = s`` is ordinary classifier-free guidance ``x0_u + s (x0_c - x0_u)`` with both dropped.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tortoise_lite.models.alignment import (
    durations_from_path,
    expand_by_durations,
    gaussian_log_likelihood,
    maximum_path,
)
from tortoise_lite.models.conditioning import COND_MODES, Cond
from tortoise_lite.models.duration import (
    DurationPredictor,
    LengthPredictor,
    durations_from_log,
    lengths_from_log,
)
from tortoise_lite.models.pitch import PITCH_REFERENCE_HZ, PitchPredictor, smooth_log_f0
from tortoise_lite.models.reference import MIN_REFERENCE_FRAMES, ReferenceEncoder

ALIGNMENTS = ("auto", "mas", "durations")
ALIGNED_FEATURES = ("prior", "encoder")


def _build(obj, **kwargs):
    """An nn.Module as is, or call a factory (e.g. a Hydra ``_partial_``) with the kwargs it accepts."""
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise TypeError(f"expected an nn.Module or a callable building one, got {type(obj).__name__}")
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return obj(**kwargs)
    return obj(**{k: v for k, v in kwargs.items() if k in params})


def _pad_ids(seqs: Sequence[Sequence[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    n = max(len(s) for s in seqs)
    tokens = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return tokens.to(device), (tokens != 0).to(device)


class TextToMel(nn.Module):
    """Text-conditioned mel diffusion model.

    Args:
        denoiser: a built denoiser (``UNet1D``/``UNet2D``) or a factory called with ``n_mels``,
            ``cond_mode``, ``cond_channels``, ``context_dim``, ``n_speakers`` (Hydra ``_partial_: true``).
        objective: ``tortoise_lite.diffusion.objectives.Objective`` (holds the schedule).
        text_encoder: a ``TextEncoder`` or a factory called with ``vocab_size`` (learned encoders).
        tokenizer: turns texts into ids for ``generate(texts=...)`` (and gives ``vocab_size``).
        mel_spec: the ``MelSpec`` of the training data (stored with the model; n_mels comes from it).
        stats: ``MelStats`` used to normalize mels (identity when None; set later with ``set_stats``).
        mode: "aligned" | "cross_attention".
        alignment: "auto" (batch durations when present, else MAS), "mas", or "durations" (required).
        aligned_features: "prior" (expanded prior mu, n_mels channels) or "encoder" (expanded h).
        cond_dim: width of the projected text sequence (cross-attention context / encoder features).
        n_speakers: speaker table size (0 = single speaker).
        sampler: default ``Sampler`` for ``generate``.
        max_frames: cap on generated frames per item (guards against runaway duration predictions).
        prior_residual: aligned mode only: diffuse x0 - mu instead of x0 (see the module doc).
        temperature: default scale on the starting noise in ``generate`` (Matcha-TTS samples at 0.667:
            < 1 trades variety for fidelity to the condition).
        voice_dim: size of the voice latent from reference clips (0 = no reference conditioning).
        voice_channels / voice_depth: width and transformer blocks of the ``ReferenceEncoder``.
        voice_drop_prob: training dropout of the voice in the denoiser only (voice guidance's null).
        voice_absent_prob: training dropout of the voice everywhere (what ``generate`` without a voice uses).
        pitch: aligned mode only: condition the denoiser on a harmonic comb of the frame's pitch (read from
            each training mel by ``HarmonicCombs``, predicted from the text by a ``PitchPredictor`` at
            inference), so that it draws harmonics where the pitch puts them instead of averaging over the
            pitches it is unsure of.
        pitch_loss_weight / pitch_hidden: weight of the pitch predictor's loss and its width.
        voicing_threshold: in ``generate``, a frame gets the comb of its predicted pitch when the predicted
            voicing probability reaches this (0.5: the predictor's own decision).
        pitch_smoothing: in ``generate``, frames (odd) of the moving average of the predicted log-F0 over voiced
            frames (1: none). Only there: the same smoothing of the training mels' pitch made WER worse.
        speaker_text: with a speaker table, add a learned speaker vector to the text features, so that the
            prior mean, the durations and the pitch are the speaker's own (Grad-TTS's multi-speaker
            encoder); without it they are the average speaker's and only the denoiser knows who speaks.
    """

    def __init__(
        self,
        denoiser: nn.Module | Callable[..., nn.Module],
        objective,
        text_encoder: nn.Module | Callable[..., nn.Module],
        tokenizer=None,
        mel_spec=None,
        stats=None,
        mode: str = "aligned",
        alignment: str = "auto",
        aligned_features: str = "prior",
        cond_dim: int = 192,
        n_speakers: int = 0,
        prior_loss_weight: float = 1.0,
        duration_loss_weight: float = 1.0,
        length_loss_weight: float = 1.0,
        duration_hidden: int = 256,
        sampler=None,
        max_frames: int = 4096,
        mas_backend: str = "auto",
        prior_residual: bool = False,
        temperature: float = 1.0,
        voice_dim: int = 0,
        voice_channels: int = 128,
        voice_depth: int = 1,
        voice_drop_prob: float = 0.1,
        voice_absent_prob: float = 0.05,
        pitch: bool = False,
        pitch_loss_weight: float = 1.0,
        pitch_hidden: int = 64,
        voicing_threshold: float = 0.5,
        pitch_smoothing: int = 1,
        speaker_text: bool = False,
    ):
        super().__init__()
        if mode not in COND_MODES:
            raise ValueError(f"TextToMel.mode must be one of {COND_MODES}, got {mode!r}")
        if alignment not in ALIGNMENTS:
            raise ValueError(f"TextToMel.alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if aligned_features not in ALIGNED_FEATURES:
            raise ValueError(
                f"TextToMel.aligned_features must be one of {ALIGNED_FEATURES}, got {aligned_features!r}"
            )
        if mel_spec is None:
            from tortoise_lite.audio.mel import MelSpec

            mel_spec = MelSpec()
        self.mel_spec = mel_spec
        self.n_mels = int(mel_spec.n_mels)
        self.tokenizer = tokenizer
        self.objective = objective
        self.mode = mode
        self.alignment = alignment
        self.aligned_features = aligned_features
        self.n_speakers = n_speakers
        self.prior_loss_weight = prior_loss_weight
        self.duration_loss_weight = duration_loss_weight
        self.length_loss_weight = length_loss_weight
        self.sampler = sampler
        self.max_frames = max_frames
        self.mas_backend = mas_backend
        if prior_residual and mode != "aligned":
            raise ValueError(
                "TextToMel.prior_residual needs mode='aligned' (there is no prior mean mu otherwise)"
            )
        self.prior_residual = prior_residual
        # zero-init: the model starts as the speaker-free one
        self.speaker_text = nn.Embedding(int(n_speakers), cond_dim) if speaker_text and n_speakers else None
        if self.speaker_text is not None:
            nn.init.zeros_(self.speaker_text.weight)
        self.pitch = bool(pitch)
        self.pitch_loss_weight = float(pitch_loss_weight)
        if not 0.0 < voicing_threshold < 1.0:
            raise ValueError(f"TextToMel.voicing_threshold must be in (0, 1), got {voicing_threshold}")
        self.voicing_threshold = float(voicing_threshold)
        if pitch_smoothing < 1 or pitch_smoothing % 2 == 0:
            raise ValueError(f"TextToMel.pitch_smoothing must be odd and >= 1, got {pitch_smoothing}")
        self.pitch_smoothing = int(pitch_smoothing)
        if not temperature > 0:
            raise ValueError(f"TextToMel.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        vocab = len(tokenizer) if tokenizer is not None else None
        self.text_encoder = _build(text_encoder, vocab_size=vocab)
        enc_dim = int(self.text_encoder.out_dim)
        self.text_proj = nn.Linear(enc_dim, cond_dim) if enc_dim != cond_dim else nn.Identity()
        self.cond_dim = cond_dim
        for name, p in (("voice_drop_prob", voice_drop_prob), ("voice_absent_prob", voice_absent_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"TextToMel.{name} must be in [0, 1], got {p}")
        self.voice_dim = int(voice_dim)
        self.voice_drop_prob = float(voice_drop_prob)
        self.voice_absent_prob = float(voice_absent_prob)
        if self.voice_dim > 0:
            self.reference_encoder = ReferenceEncoder(
                self.n_mels, voice_channels, self.voice_dim, voice_depth
            )
            self.null_voice = nn.Parameter(torch.zeros(self.voice_dim))
            # FiLM of the text features by the voice; zero-init: the model starts as the voice-free one
            self.voice_film = nn.Linear(self.voice_dim, 2 * cond_dim)
            nn.init.zeros_(self.voice_film.weight)
            nn.init.zeros_(self.voice_film.bias)
        if mode == "aligned":
            self.prior = nn.Linear(cond_dim, self.n_mels)
            self.duration_predictor = DurationPredictor(cond_dim, duration_hidden)
            cond_channels = self.n_mels if aligned_features == "prior" else cond_dim
            context_dim = 0
            if pitch:
                from tortoise_lite.audio.pitch import HarmonicCombs

                self.pitch_combs = HarmonicCombs(self.mel_spec)
                self.pitch_predictor = PitchPredictor(cond_dim, pitch_hidden)
                cond_channels += self.n_mels  # the comb: one more channel per mel bin
        elif pitch:
            raise ValueError("TextToMel.pitch needs mode='aligned' (the comb is a frame-aligned condition)")
        else:
            self.length_predictor = LengthPredictor(cond_dim, duration_hidden)
            cond_channels = 0
            context_dim = cond_dim
        self.denoiser = _build(
            denoiser,
            n_mels=self.n_mels,
            cond_mode=mode,
            cond_channels=cond_channels,
            context_dim=context_dim,
            n_speakers=n_speakers,
            **({"voice_dim": self.voice_dim} if self.voice_dim > 0 else {}),
        )
        got = getattr(self.denoiser, "cond_mode", mode)
        if got != mode:
            raise ValueError(f"the denoiser was built with cond_mode={got!r} but TextToMel.mode={mode!r}")
        self.set_stats(stats)

    # ------------------------------------------------------------------ normalization
    def set_stats(self, stats) -> None:
        """Set the MelStats used to normalize (None = identity)."""
        if stats is None:
            from tortoise_lite.audio.stats import MelStats

            stats = MelStats.identity(self.n_mels)
        if stats.n_mels != self.n_mels:
            raise ValueError(
                f"MelStats have {stats.n_mels} bins but the model's MelSpec has n_mels={self.n_mels}"
            )
        self.stats = stats

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ text
    def encode_text(
        self,
        tokens: Tensor | None,
        token_mask: Tensor | None,
        texts: list[str] | None = None,
        text_embedding: Tensor | None = None,
        text_embedding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """-> h (B, L, cond_dim) zero at padded tokens, mask (B, L) bool."""
        h, mask = self.text_encoder(
            tokens=tokens,
            token_mask=token_mask,
            texts=texts,
            embedding=text_embedding,
            embedding_mask=text_embedding_mask,
        )
        h = self.text_proj(h.to(self.device)) * mask[..., None].to(h.dtype)
        return h, mask.to(self.device)

    # ------------------------------------------------------------------ voice
    def encode_references(self, ref_mel: Tensor, ref_lengths: Tensor) -> Tensor:
        """Raw log-mel reference clips (B, K, n_mels, T) with lengths (B, K) (0 = no clip) -> (B, voice_dim).

        The clips are normalized with the model's MelStats, as the training mels are."""
        if self.voice_dim <= 0:
            raise ValueError("this model has no reference encoder (voice_dim=0): it takes no voice")
        ref_mel = ref_mel.to(self.device)
        mask = (
            torch.arange(ref_mel.shape[-1], device=ref_mel.device) < ref_lengths.to(ref_mel.device)[..., None]
        )
        x = self.stats.normalize(ref_mel) * mask[:, :, None, :].to(ref_mel.dtype)
        return self.reference_encoder(x, ref_lengths)

    def voice_latent(self, mels: Sequence[Tensor]) -> Tensor:
        """One voice from its clips: raw log-mels [(n_mels, T_k), ...] -> latent (voice_dim,).

        The mean of the clips' latents (each clip's latent depends only on that clip)."""
        if not mels:
            raise ValueError("voice_latent needs at least one reference clip")
        for k, m in enumerate(mels):
            if m.ndim != 2 or m.shape[0] != self.n_mels:
                raise ValueError(
                    f"reference clip {k}: expected a mel (n_mels={self.n_mels}, T), got {tuple(m.shape)}"
                )
            if m.shape[1] < MIN_REFERENCE_FRAMES:
                raise ValueError(
                    f"reference clip {k} has {m.shape[1]} frames; the reference encoder needs at least "
                    f"{MIN_REFERENCE_FRAMES}"
                )
        T = max(int(m.shape[1]) for m in mels)
        floor = math.log(self.mel_spec.log_floor)
        ref = torch.full((1, len(mels), self.n_mels, T), floor, device=self.device)
        for k, m in enumerate(mels):
            ref[0, k, :, : m.shape[1]] = m.to(self.device, torch.float32)
        lengths = torch.tensor([[int(m.shape[1]) for m in mels]], device=self.device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.encode_references(ref, lengths)[0]
        finally:
            self.train(was_training)

    def apply_voice(self, h: Tensor, tmask: Tensor, voice: Tensor) -> Tensor:
        """FiLM of the text features h (B, L, cond_dim) by voice latents (B, voice_dim); zero at padding."""
        scale, shift = self.voice_film(voice.to(h.dtype)).chunk(2, dim=-1)
        return (h * (1 + scale[:, None, :]) + shift[:, None, :]) * tmask[..., None].to(h.dtype)

    def _null_voice(self, b: int) -> Tensor:
        return self.null_voice[None, :].expand(b, -1)

    # ------------------------------------------------------------------ pitch
    def predict_pitch(self, h: Tensor, durations: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Text features h (B, L, cond_dim) expanded by durations (B, L) -> ``(log2(F0 / 150 Hz) (B, T),
        voiced logit (B, T))`` for the frames of ``frame_mask`` (B, T). The speaker reaches it through h
        (``speaker_text``, or the voice's FiLM)."""
        frames = expand_by_durations(h, durations, frame_mask.shape[1])
        return self.pitch_predictor(frames, frame_mask)

    def _given_pitch(self, f0: Tensor, voiced: Tensor | None, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """A caller's pitch f0 (B, T) Hz and voicing (B, T) for the frames of ``frame_mask`` (B, T)."""
        f0 = torch.as_tensor(f0, device=frame_mask.device, dtype=torch.float32)
        if voiced is None:
            voiced = f0 > 0
        voiced = torch.as_tensor(voiced, device=frame_mask.device).bool()
        if f0.shape != frame_mask.shape or voiced.shape != frame_mask.shape:
            raise ValueError(
                f"f0 and voiced must be (B, T) = {tuple(frame_mask.shape)} (the frames the durations give), "
                f"got {tuple(f0.shape)} and {tuple(voiced.shape)}"
            )
        voiced = voiced & frame_mask & (f0 > 0)
        return torch.where(voiced, f0, torch.full_like(f0, PITCH_REFERENCE_HZ)), voiced

    def add_speaker(self, h: Tensor, tmask: Tensor, speaker: Tensor | None) -> Tensor:
        """h (B, L, cond_dim) plus the speaker's text vector (``speaker_text``); zero at padding."""
        if self.speaker_text is None or speaker is None:
            return h
        return h + self.speaker_text(speaker)[:, None, :].to(h.dtype) * tmask[..., None].to(h.dtype)

    def _use_batch_durations(self, durations: Tensor | None) -> bool:
        if self.alignment == "mas":
            return False
        if durations is None:
            if self.alignment == "durations":
                raise ValueError(
                    "TextToMel.alignment='durations' but the batch has no durations: use a corpus that "
                    "provides them (e.g. synthetic_speech) or set alignment to 'auto'/'mas'"
                )
            return False
        if self.text_encoder.input_kind != "tokens":
            # exact durations count frames per Batch.tokens entry; other encoders have their own sequence
            if self.alignment == "durations":
                raise ValueError(
                    "Batch.durations index Batch.tokens: use a learned (token) text encoder with them"
                )
            return False
        return True

    # ------------------------------------------------------------------ training
    def check_batch(self, batch) -> None:
        """The data checks of :meth:`loss`, on a (host) batch: token ids within the vocabulary, speaker ids
        within the table, durations summing to the mel lengths. ``loss`` runs them itself only on CPU tensors
        (on a GPU they would make every step wait for the device); the training module calls this on the
        batch before its transfer."""
        vocab = getattr(self.text_encoder, "vocab_size", None)
        if vocab is not None and batch.tokens is not None and batch.tokens.numel():
            if int(batch.tokens.max()) >= vocab:
                raise ValueError(
                    f"token id {int(batch.tokens.max())} >= vocab_size {vocab}: the encoder was built for a "
                    "different tokenizer"
                )
        spk = batch.speaker
        if self.n_speakers and spk is not None and spk.numel():
            if int(spk.max()) >= self.n_speakers or int(spk.min()) < 0:
                raise ValueError(f"Cond.speaker ids must be in [0, {self.n_speakers}), got {spk.tolist()}")
        if self.mode == "aligned" and self._use_batch_durations(batch.durations):
            durations = batch.durations.long() * batch.token_mask.long()
            if bool((durations.sum(-1) != batch.mel_lengths).any()):
                raise ValueError("Batch.durations do not sum to Batch.mel_lengths for every item")

    def loss(self, batch) -> tuple[Tensor, dict[str, float | Tensor]]:
        """batch: ``tortoise_lite.data.batch.Batch`` -> (scalar loss, logs)."""
        mel_mask = batch.mel_mask
        x0 = self.stats.normalize(batch.mel) * mel_mask[:, None, :].to(batch.mel.dtype)
        h, tmask = self.encode_text(
            batch.tokens, batch.token_mask, batch.texts, batch.text_embedding, batch.text_embedding_mask
        )
        logs: dict[str, float | Tensor] = {}
        total = x0.new_zeros(())
        T = x0.shape[-1]
        h_dur = h.detach()
        den_voice = None
        if self.voice_dim > 0:
            if getattr(batch, "ref_mel", None) is None:
                raise ValueError(
                    "this model conditions on reference clips (voice_dim > 0) but the batch has none: set "
                    "data.references (clips per item, e.g. 3) on a multi-speaker corpus"
                )
            voice = self.encode_references(batch.ref_mel, batch.ref_lengths)
            B = voice.shape[0]
            if self.training and self.voice_absent_prob > 0:
                absent = torch.rand(B, device=voice.device) < self.voice_absent_prob
                voice = torch.where(absent[:, None], self._null_voice(B), voice)
            den_voice = voice
            if self.training and self.voice_drop_prob > 0:
                dropped = torch.rand(B, device=voice.device) < self.voice_drop_prob
                den_voice = torch.where(dropped[:, None], self._null_voice(B), voice)
            # the duration predictor sees detached text features but learns the voice's rate
            h_dur = self.apply_voice(h_dur, tmask, voice)
            h = self.apply_voice(h, tmask, voice)
        # the duration and pitch predictors see detached text features but learn the speaker's rate and pitch
        h_dur = self.add_speaker(h_dur, tmask, batch.speaker)
        h = self.add_speaker(h, tmask, batch.speaker)
        if self.mode == "aligned":
            mu = self.prior(h)  # (B, L, n_mels)
            if self._use_batch_durations(batch.durations):
                durations = batch.durations.long() * tmask.long()
                on_host = durations.device.type == "cpu"  # elsewhere: check_batch before the transfer
                if on_host and bool((durations.sum(-1) != batch.mel_lengths).any()):
                    raise ValueError("Batch.durations do not sum to Batch.mel_lengths for every item")
            else:
                with torch.no_grad():
                    log_p = gaussian_log_likelihood(x0, mu)
                    lengths = tmask.sum(-1)
                    path = maximum_path(log_p, lengths, batch.mel_lengths, self.mas_backend)
                durations = durations_from_path(path)
            mu_frames = expand_by_durations(mu, durations, T)  # (B, n_mels, T)
            fm = mel_mask[:, None, :].to(x0.dtype)
            prior = 0.5 * ((x0 - mu_frames) ** 2 + math.log(2 * math.pi)) * fm
            prior_loss = prior.sum() / (fm.sum() * self.n_mels)
            log_dur = self.duration_predictor(h_dur, tmask)
            target = torch.log1p(durations.float()) * tmask
            dur_loss = ((log_dur - target) ** 2 * tmask).sum() / tmask.sum().clamp_min(1)
            total = total + self.prior_loss_weight * prior_loss + self.duration_loss_weight * dur_loss
            logs.update(prior_loss=prior_loss.detach(), duration_loss=dur_loss.detach())
            feats = mu_frames if self.aligned_features == "prior" else expand_by_durations(h, durations, T)
            if self.pitch:
                # the target pitch is read from the mel itself; the denoiser gets the true comb (teacher
                # forcing, as FastSpeech 2 feeds the true pitch), the predictor learns to supply it
                f0, voiced, _ = self.pitch_combs.estimate(batch.mel, mel_mask)
                log_f0, v_logit = self.predict_pitch(h_dur, durations, mel_mask)
                vm, fmask_t = voiced.to(x0.dtype), mel_mask.to(x0.dtype)
                target = torch.log2(f0 / PITCH_REFERENCE_HZ)
                f0_loss = ((log_f0 - target) ** 2 * vm).sum() / vm.sum().clamp_min(1)
                bce = F.binary_cross_entropy_with_logits(v_logit, vm, reduction="none")
                vuv_loss = (bce * fmask_t).sum() / fmask_t.sum().clamp_min(1)
                total = total + self.pitch_loss_weight * (f0_loss + vuv_loss)
                logs.update(pitch_loss=f0_loss.detach(), voicing_loss=vuv_loss.detach())
                feats = torch.cat([feats, self.pitch_combs.comb(f0, voiced).to(feats.dtype)], dim=1)
            cond = Cond(frames=feats, frame_mask=mel_mask, speaker=batch.speaker, voice=den_voice)
            if self.prior_residual:
                # mu is shaped by the prior loss alone: the residual target must not chase it
                x0 = (x0 - mu_frames.detach()) * fm
        else:
            log_len = self.length_predictor(h_dur, tmask)
            len_loss = F.mse_loss(log_len, batch.mel_lengths.float().log())
            total = total + self.length_loss_weight * len_loss
            logs.update(length_loss=len_loss.detach())
            cond = Cond(
                tokens=h, token_mask=tmask, frame_mask=mel_mask, speaker=batch.speaker, voice=den_voice
            )

        def denoise_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(x_t, t, cond)

        diff, info = self.objective.loss(denoise_fn, x0, mask=mel_mask[:, None, :])
        diff_loss = diff.mean()
        total = total + diff_loss
        logs.update(diffusion_loss=diff_loss.detach(), loss=total.detach(), t_mean=info["t"].mean())
        return total, logs

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_lengths(
        self,
        h: Tensor,
        tmask: Tensor,
        length_scale: float | Tensor = 1.0,
        durations: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor]:
        """-> (durations (B, L) long or None, frames (B,) long) from predictions or user overrides."""
        if self.mode == "aligned":
            if durations is None:
                durations = durations_from_log(self.duration_predictor(h, tmask), tmask, length_scale)
            else:
                durations = torch.as_tensor(durations, device=h.device).long()
                if durations.shape != tmask.shape:
                    raise ValueError(
                        f"durations must be (B, L) = {tuple(tmask.shape)}, got {tuple(durations.shape)}"
                    )
                durations = durations * tmask.long()
            n = durations.sum(-1).clamp_min(1)
        else:
            if lengths is None:
                n = lengths_from_log(self.length_predictor(h, tmask), length_scale)
            else:
                n = torch.as_tensor(lengths, device=h.device).long().reshape(-1)
        if bool((n > self.max_frames).any()):
            raise ValueError(
                f"predicted lengths {n.tolist()} exceed max_frames={self.max_frames}: the text is too long or "
                "the duration predictor is untrained; lower length_scale or pass durations/lengths"
            )
        return durations, n

    @torch.no_grad()
    def generate(
        self,
        texts: list[str] | None = None,
        tokens: Tensor | Sequence[Sequence[int]] | None = None,
        sampler=None,
        steps: int | None = None,
        guidance: float = 1.0,
        seed: int | None = None,
        length_scale: float | Tensor = 1.0,
        temperature: float | None = None,
        durations: Tensor | None = None,
        lengths: Tensor | None = None,
        speaker: Tensor | None = None,
        text_embedding: Tensor | None = None,
        text_embedding_mask: Tensor | None = None,
        generator: Sequence[torch.Generator] | None = None,
        voice: Tensor | None = None,
        voice_guidance: float | None = None,
        pitch_shift: float = 0.0,
        f0: Tensor | None = None,
        voiced: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Synthesize raw log-mels.

        Args:
            texts / tokens: the inputs (tokens (B, L) long with 0 = pad, or lists of ids).
            sampler: a ``Sampler`` (default: the one given at construction); steps overrides its steps.
            guidance: classifier-free guidance scale (1 = off; cond and null in one batched pass).
            seed: per-item generators -> the output for an item does not depend on the batch.
            length_scale: >1 slower speech; durations (B, L) / lengths (B,): explicit overrides.
            temperature: scale on the starting noise (None = the model's ``temperature``).
            speaker: (B,) speaker ids of a multi-speaker model (None = speaker 0, the first trained one).
            voice: voice latents (B, voice_dim) or one (voice_dim,) for every item (``voice_latent``) of a
                voice model; None = the learned average voice.
            voice_guidance: guidance scale of the voice (None = ``guidance``); see the module doc.
            pitch_shift: semitones added to the predicted pitch (models trained with ``pitch``; else ignored).
            f0 / voiced: a given pitch (B, T) in Hz and voicing (B, T) bool instead of the predicted one, with
                ``durations`` that sum to T (ground-truth-aligned mels: the pitch read from the real mel by
                ``pitch_combs.estimate``, as in training; models trained with ``pitch`` only).
        Returns:
            mel (B, n_mels, T) raw natural-log mel (padded frames = log(log_floor)), mel_lengths (B,) long.
        """
        was_training = self.training
        self.eval()
        try:
            return self._generate(
                texts, tokens, sampler, steps, guidance, seed, length_scale, temperature,
                durations, lengths, speaker, text_embedding, text_embedding_mask, generator, voice,
                voice_guidance, pitch_shift, f0, voiced,
            )  # fmt: skip
        finally:
            self.train(was_training)

    def _generate(
        self, texts, tokens, sampler, steps, guidance, seed, length_scale, temperature,
        durations, lengths, speaker, text_embedding, text_embedding_mask, generator, voice=None,
        voice_guidance=None, pitch_shift=0.0, f0=None, voiced=None,
    ):  # fmt: skip
        from tortoise_lite.diffusion.guidance import cfg_x0_fn, combined_x0_fn
        from tortoise_lite.diffusion.samplers import Sampler, make_generators

        if f0 is not None and not (self.mode == "aligned" and self.pitch):
            raise ValueError("f0= needs a model trained with pitch (model.pitch=true, aligned mode)")
        device = self.device
        tmask = None
        if tokens is None and self.text_encoder.input_kind == "tokens":
            if texts is None:
                raise ValueError("generate: pass texts=[...] or tokens=")
            if self.tokenizer is None:
                raise ValueError(
                    "generate(texts=...) needs a tokenizer: build TextToMel with tokenizer=, or pass tokens="
                )
            tokens, tmask = _pad_ids([self.tokenizer.encode(t) for t in texts], device)
        elif tokens is not None and not isinstance(tokens, Tensor):
            tokens, tmask = _pad_ids(tokens, device)
        elif tokens is not None:
            tokens = tokens.to(device)
            tmask = tokens != 0
        h, tmask = self.encode_text(tokens, tmask, texts, text_embedding, text_embedding_mask)
        b = h.shape[0]
        if self.voice_dim > 0:
            if voice is None:
                voice = self._null_voice(b)
            voice = torch.as_tensor(voice, device=device, dtype=h.dtype)
            if voice.ndim == 1:
                voice = voice[None, :].expand(b, -1)
            if voice.shape != (b, self.voice_dim):
                raise ValueError(
                    f"voice must be ({self.voice_dim},) or (B={b}, {self.voice_dim}) latents, got {tuple(voice.shape)}"
                )
            h = self.apply_voice(h, tmask, voice)
        elif voice is not None:
            raise ValueError(
                "this model was trained without reference clips (voice_dim=0): it takes no voice"
            )
        if speaker is None and self.n_speakers > 0:
            # A multi-speaker model speaks with its first speaker unless told otherwise: the null speaker
            # (guidance dropout's) averages the voices and blurs the harmonics (speech WER 0.31 vs 0.27).
            speaker = torch.zeros(b, dtype=torch.long, device=device)
        if speaker is not None:
            speaker = torch.as_tensor(speaker, device=device).long().reshape(b)
        h = self.add_speaker(h, tmask, speaker)
        durations, n = self.predict_lengths(h, tmask, length_scale, durations, lengths)
        T = int(n.max())
        frame_mask = torch.arange(T, device=device)[None, :] < n[:, None]
        if self.mode == "aligned":
            mu = self.prior(h)
            mu_frames = expand_by_durations(mu, durations, T)
            feats = mu_frames if self.aligned_features == "prior" else expand_by_durations(h, durations, T)
            if self.pitch:
                if f0 is not None:
                    f0, voiced = self._given_pitch(f0, voiced, frame_mask)
                    f0 = f0 * 2.0 ** (float(pitch_shift) / 12.0)
                else:
                    log_f0, v_logit = self.predict_pitch(h, durations, frame_mask)
                    voiced = (torch.sigmoid(v_logit.float()) >= self.voicing_threshold) & frame_mask
                    log_f0 = smooth_log_f0(log_f0, voiced, self.pitch_smoothing)
                    f0 = PITCH_REFERENCE_HZ * torch.exp2(log_f0 + float(pitch_shift) / 12.0)
                comb = self.pitch_combs.comb(f0, voiced)
                feats = torch.cat([feats, comb.to(feats.dtype)], dim=1)
            cond = Cond(frames=feats, frame_mask=frame_mask, speaker=speaker, voice=voice)
        else:
            cond = Cond(tokens=h, token_mask=tmask, frame_mask=frame_mask, speaker=speaker, voice=voice)

        if generator is None and seed is not None:
            generator = make_generators(seed, b, device)
        # noise drawn as (T_i, n_mels) per item then transposed: its values do not depend on the padding
        noise = torch.zeros(b, self.n_mels, T, device=device)
        for i in range(b):
            ti = int(n[i])
            g = generator[i] if generator is not None else None
            gdev = g.device if g is not None else device
            noise[i, :, :ti] = torch.randn(ti, self.n_mels, generator=g, device=gdev).to(device).T
        noise = noise * (self.temperature if temperature is None else temperature)

        fmask = frame_mask[:, None, :].float()
        s_c = float(guidance)
        s_v = s_c if voice_guidance is None or self.voice_dim == 0 else float(voice_guidance)
        # the null branch drops the text and, for a voice model, the denoiser's voice (the FiLM'd text
        # features keep the voice in every branch, as in training, where the voice dropout is the denoiser's)
        null = cond.null()
        if self.voice_dim > 0:
            null = replace(null, voice=self._null_voice(b))
        if s_v == s_c:  # one scale: ordinary CFG (text and voice dropped together)
            branches, weights = ([cond, null], None) if s_c != 1.0 else ([cond], None)
        else:  # independent scales: (text, voice), (text, null voice), (null, null voice)
            candidates = [cond, replace(cond, voice=self._null_voice(b)), null]
            kept = [(c, w) for c, w in zip(candidates, [s_v, s_c - s_v, 1.0 - s_c]) if w != 0.0]
            branches, weights = [c for c, _ in kept], [w for _, w in kept]
        batched_cond = branches[0]
        for other in branches[1:]:
            batched_cond = batched_cond.cat(other)

        def denoise_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(x_t, t, batched_cond)

        x0_fn = self.objective.x0_fn(denoise_fn)
        if weights is not None:
            x0_fn = combined_x0_fn(x0_fn, weights)
        elif len(branches) == 2:
            x0_fn = cfg_x0_fn(x0_fn, s_c)

        def masked_x0(x_t: Tensor, t: Tensor) -> Tensor:
            return x0_fn(x_t, t) * fmask

        sampler = sampler if sampler is not None else (self.sampler or Sampler())
        kwargs = {"offset": mu_frames} if self.prior_residual else {}
        result = sampler(
            masked_x0, self.objective.schedule, noise, generator=generator, steps=steps, **kwargs
        )
        mel = self.stats.denormalize(result.x)
        silence = math.log(self.mel_spec.log_floor)
        mel = torch.where(frame_mask[:, None, :], mel, torch.full_like(mel, silence))
        return mel, n
