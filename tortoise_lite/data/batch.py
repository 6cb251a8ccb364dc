"""The one batch type every model and training module consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """A padded batch of mels and token sequences.

    mel: ``(B, n_mels, T)`` float32 raw natural-log mel (NOT normalized; padding = ``log(log_floor)``)
    mel_lengths: ``(B,)`` long; mel_mask: ``(B, T)`` bool (True = real frame)
    tokens: ``(B, L)`` long (0 = pad); token_lengths: ``(B,)`` long; token_mask: ``(B, L)`` bool
    durations: ``(B, L)`` long frames per token summing to ``mel_lengths`` (when the corpus knows them)
    speaker: ``(B,)`` long speaker ids (when the dataset has speakers)
    text_embedding: ``(B, L2, D)`` float and text_embedding_mask ``(B, L2)`` bool (precomputed encoders)
    ref_mel: ``(B, K, n_mels, Tr)`` raw log-mel reference clips of each item's voice (other utterances of
        the same speaker; voice models) and ref_lengths ``(B, K)`` long frames per clip (0 = no clip)
    texts / ids: the transcripts and item ids, in batch order.
    """

    mel: torch.Tensor
    mel_lengths: torch.Tensor
    mel_mask: torch.Tensor
    tokens: torch.Tensor
    token_lengths: torch.Tensor
    token_mask: torch.Tensor
    durations: torch.Tensor | None = None
    speaker: torch.Tensor | None = None
    text_embedding: torch.Tensor | None = None
    text_embedding_mask: torch.Tensor | None = None
    ref_mel: torch.Tensor | None = None
    ref_lengths: torch.Tensor | None = None
    texts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device`` (lists are shared)."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        return Batch(**moved)

    def __len__(self) -> int:
        return int(self.mel.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.mel.shape[0])
