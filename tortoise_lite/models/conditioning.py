"""Conditioning passed to denoisers, and the module that turns it into network inputs.

``Cond`` is the small dataclass of the denoiser contract ``denoiser(x_t, t, cond)``. ``CondEmbedder``
(used inside both U-Nets) applies classifier-free-guidance dropout with learned null conditions and
embeds the optional speaker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

COND_MODES = ("aligned", "cross_attention")


@dataclass
class Cond:
    """Conditioning for one batch.

    frames: (B, C, T) frame-aligned features (``aligned`` mode) or None.
    tokens: (B, L, D) token sequence for cross-attention, with token_mask (B, L) bool (True = real).
    frame_mask: (B, T) bool, True = real frame. Required.
    speaker: (B,) long speaker ids or None.
    voice: (B, V) float voice latents (from reference clips; ``TextToMel`` puts its learned null voice in
        the rows whose voice is dropped) or None.
    drop: (B,) bool or None; True replaces that item's content condition (frames/tokens/speaker) by the
        learned null condition (classifier-free guidance's unconditional branch). The voice is dropped
        separately (through ``voice``), so content and voice can be guided independently.
    """

    frames: Tensor | None = None
    tokens: Tensor | None = None
    token_mask: Tensor | None = None
    frame_mask: Tensor | None = None
    speaker: Tensor | None = None
    drop: Tensor | None = None
    voice: Tensor | None = None

    def __post_init__(self) -> None:
        if self.frame_mask is None:
            raise ValueError("Cond.frame_mask (B, T) bool is required")
        if self.tokens is not None and self.token_mask is None:
            raise ValueError("Cond.tokens given without Cond.token_mask (B, L) bool")

    @property
    def batch_size(self) -> int:
        return self.frame_mask.shape[0]

    def drop_mask(self) -> Tensor:
        """(B,) bool: which items use the null condition."""
        if self.drop is None:
            return torch.zeros(self.batch_size, dtype=torch.bool, device=self.frame_mask.device)
        return self.drop

    def null(self) -> Cond:
        """The same batch with every item's condition replaced by the null condition."""
        return replace(self, drop=torch.ones_like(self.drop_mask()))

    def with_drop(self, drop: Tensor) -> Cond:
        return replace(self, drop=drop.to(torch.bool))

    def cat(self, other: Cond) -> Cond:
        """Concatenate two conds along the batch (e.g. cond + null for one guidance pass).

        Token sequences of different lengths are right-padded (mask False)."""

        def pad_to(z: Tensor, n: int) -> Tensor:
            extra = n - z.shape[1]
            if extra == 0:
                return z
            return torch.cat([z, z.new_zeros((z.shape[0], extra) + tuple(z.shape[2:]))], dim=1)

        def c(a: Tensor | None, b: Tensor | None, name: str) -> Tensor | None:
            if a is None and b is None:
                return None
            if a is None or b is None:
                raise ValueError(f"cannot concatenate Cond objects: {name} is set on only one side")
            if name in ("tokens", "token_mask"):
                n = max(a.shape[1], b.shape[1])
                a, b = pad_to(a, n), pad_to(b, n)
            return torch.cat([a, b], dim=0)

        return Cond(
            frames=c(self.frames, other.frames, "frames"),
            tokens=c(self.tokens, other.tokens, "tokens"),
            token_mask=c(self.token_mask, other.token_mask, "token_mask"),
            frame_mask=c(self.frame_mask, other.frame_mask, "frame_mask"),
            speaker=c(self.speaker, other.speaker, "speaker"),
            drop=torch.cat([self.drop_mask(), other.drop_mask()]),
            voice=c(self.voice, other.voice, "voice"),
        )

    def to(self, device: torch.device | str) -> Cond:
        def mv(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(device)

        return Cond(
            *(
                mv(getattr(self, f))
                for f in ("frames", "tokens", "token_mask", "frame_mask", "speaker", "drop", "voice")
            )
        )


class CondEmbedder(nn.Module):
    """Guidance dropout + null conditions + speaker embedding, shared by both U-Nets.

    mode ``aligned``: frames (B, cond_channels, T); the null condition is a learned vector per channel.
    mode ``cross_attention``: tokens (B, L, context_dim); the null condition is one learned token.
    n_speakers > 0 adds an embedding table (one extra row = null speaker) whose vector is added to
    the timestep embedding (dim ``emb_dim``).
    voice_dim > 0 projects ``Cond.voice`` (B, voice_dim) and adds it to the timestep embedding too.
    """

    def __init__(
        self,
        mode: str,
        emb_dim: int,
        cond_channels: int = 0,
        context_dim: int = 0,
        n_speakers: int = 0,
        cond_drop_prob: float = 0.1,
        voice_dim: int = 0,
    ):
        super().__init__()
        if mode not in COND_MODES:
            raise ValueError(f"cond_mode must be one of {COND_MODES}, got {mode!r}")
        if not 0.0 <= cond_drop_prob <= 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1], got {cond_drop_prob}")
        self.mode = mode
        self.cond_drop_prob = cond_drop_prob
        self.n_speakers = n_speakers
        if mode == "aligned":
            if cond_channels <= 0:
                raise ValueError("aligned conditioning needs cond_channels > 0 (channels of Cond.frames)")
            self.null_frames = nn.Parameter(torch.zeros(cond_channels))
        else:
            if context_dim <= 0:
                raise ValueError(
                    "cross_attention conditioning needs context_dim > 0 (last dim of Cond.tokens)"
                )
            self.null_token = nn.Parameter(torch.randn(context_dim) * 0.02)
        self.speaker_emb = nn.Embedding(n_speakers + 1, emb_dim) if n_speakers > 0 else None
        if self.speaker_emb is not None:
            nn.init.normal_(self.speaker_emb.weight, std=0.02)
        self.voice_dim = voice_dim
        self.voice_proj = (
            nn.Sequential(nn.Linear(voice_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            if voice_dim > 0
            else None
        )

    def drop_mask(self, cond: Cond) -> Tensor:
        """(B,) bool: items using the null condition (explicit drops, plus random ones in training)."""
        drop = cond.drop_mask()
        if self.training and self.cond_drop_prob > 0:
            rnd = torch.rand(drop.shape, device=drop.device) < self.cond_drop_prob
            drop = drop | rnd
        return drop

    def forward(
        self, cond: Cond, emb: Tensor, dtype: torch.dtype
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor]:
        """Returns (frames (B, C, T) | None, tokens (B, L, D) | None, token_mask (B, L) | None, emb (B, E)).

        Frames are zero at padded frames; the null condition replaces dropped items."""
        drop = self.drop_mask(cond)
        fm = cond.frame_mask
        frames = tokens = token_mask = None
        if self.mode == "aligned":
            if cond.frames is None:
                raise ValueError("aligned conditioning: Cond.frames (B, C, T) is required")
            if cond.frames.shape[1] != self.null_frames.shape[0]:
                raise ValueError(
                    f"Cond.frames has {cond.frames.shape[1]} channels but the denoiser was built with "
                    f"cond_channels={self.null_frames.shape[0]}"
                )
            null = self.null_frames.to(dtype)[None, :, None].expand_as(cond.frames)
            frames = torch.where(drop[:, None, None], null, cond.frames.to(dtype))
            frames = frames * fm[:, None, :].to(dtype)
        else:
            if cond.tokens is None:
                raise ValueError("cross_attention conditioning: Cond.tokens and Cond.token_mask are required")
            if cond.tokens.shape[-1] != self.null_token.shape[0]:
                raise ValueError(
                    f"Cond.tokens has dim {cond.tokens.shape[-1]} but the denoiser was built with "
                    f"context_dim={self.null_token.shape[0]}"
                )
            null = self.null_token.to(dtype)[None, None, :].expand_as(cond.tokens)
            tokens = torch.where(drop[:, None, None], null, cond.tokens.to(dtype))
            first = torch.zeros_like(cond.token_mask)
            first[:, 0] = True
            token_mask = torch.where(drop[:, None], first, cond.token_mask)
        if self.speaker_emb is not None:
            spk = cond.speaker
            if spk is None:
                spk = torch.full_like(drop, self.n_speakers, dtype=torch.long)
            else:
                # on the host only (on a GPU this read would stall every step; the training module checks the
                # host batch before its transfer: TextToMel.check_batch)
                on_host = spk.device.type == "cpu" and not torch.compiler.is_compiling()
                if on_host and (int(spk.max()) >= self.n_speakers or int(spk.min()) < 0):
                    raise ValueError(
                        f"Cond.speaker ids must be in [0, {self.n_speakers}), got {spk.tolist()}"
                    )
                spk = torch.where(drop, torch.full_like(spk, self.n_speakers), spk)
            emb = emb + self.speaker_emb(spk).to(emb.dtype)
        if self.voice_proj is not None:
            if cond.voice is None or cond.voice.shape != (drop.shape[0], self.voice_dim):
                got = None if cond.voice is None else tuple(cond.voice.shape)
                raise ValueError(
                    f"this denoiser conditions on a voice: Cond.voice must be (B, {self.voice_dim}), got {got}"
                )
            emb = emb + self.voice_proj(cond.voice.to(emb.dtype))
        return frames, tokens, token_mask, emb
