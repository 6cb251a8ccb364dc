"""Speaker similarity: a small verification embedding trained on the toolkit's own voices.

Zero-shot voice tests (issue #14) ask whether generated speech sounds like the requested voice. The
judge is a plain-torch speaker encoder trained to tell the *training* voices apart; it is scored on
voices it never saw (equal error rate, identification among the held-out voices), and then applied to
generated speech of those voices.

- input: raw log-mels ``(B, n_mels, T)`` in the verifier's ``MelSpec`` with their lengths. Per item, the
  level is removed (the clip's mean log-mel over all bins and frames) and each mel bin is standardized
  with statistics stored from the training clips: nothing depends on the rest of the batch;
- model (:class:`SpeakerEncoder`, ~190 k parameters): a strided 1-D conv over time, residual dilated
  convs with per-frame channel LayerNorm, attentive mean + std statistics pooling over the real frames,
  a linear projection, L2 normalization. Padded frames are zeroed before every conv, so an item's
  embedding is the same alone or in a padded batch;
- training (:func:`train_speaker_encoder`): softmax over the training speakers with an additive cosine
  margin head (AM-softmax) on seeded random crops, Adam with a one-cycle schedule;
- metrics: :func:`equal_error_rate` over all pairs, :func:`identify` (nearest centroid by cosine) and
  :func:`similarity_report` (cosine to the requested voice's centroid, identification accuracy, chance).

:func:`load_or_train` keeps trained verifiers in ``speaker-v<version>-<hash>.pt`` keyed by the clips and
the training settings (as :func:`tortoise_lite.evaluation.digits.classifier_for` keeps its classifier).

    verifier = load_or_train({"en-us+f3": [mel, ...], ...}, MelSpec())
    emb = verifier.embed_mels([mel_a, mel_b])          # (2, D), unit norm
    equal_error_rate(emb, ["a", "b"]) ...
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.audio.stats import MelStats
from tortoise_lite.data.dataset import lengths_to_mask

__all__ = [
    "SpeakerEncoder",
    "SpeakerVerifier",
    "equal_error_rate",
    "identify",
    "load_or_train",
    "similarity_report",
    "train_speaker_encoder",
]

_FORMAT = "tortoise_lite.speaker_verifier"
_CACHE_VERSION = 1  # bump when the encoder or its training changes (cached verifiers are then retrained)


# ---------------------------------------------------------------------------------------------- model
class SpeakerEncoder(nn.Module):
    """Raw log-mel ``(B, n_mels, T)`` + lengths ``(B,)`` -> unit-norm speaker embedding ``(B, dim)``.

    ``mel_mean`` / ``mel_std`` (buffers, ``(n_mels,)``): per-bin statistics of level-free training
    log-mels; :func:`train_speaker_encoder` sets them. See the module doc for the layers.
    """

    def __init__(
        self, n_mels: int = 80, channels: int = 128, dim: int = 128, dilations: Sequence[int] = (2, 3)
    ) -> None:
        super().__init__()
        self.config = {"n_mels": n_mels, "channels": channels, "dim": dim, "dilations": list(dilations)}
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.inp = nn.Conv1d(n_mels, channels, 5, stride=2, padding=2)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.attention = nn.Sequential(nn.Conv1d(channels, 64, 1), nn.Tanh(), nn.Conv1d(64, 1, 1))
        self.proj = nn.Linear(2 * channels, dim)

    @property
    def n_mels(self) -> int:
        return self.config["n_mels"]

    def set_stats(self, stats: MelStats) -> None:
        if stats.n_mels != self.n_mels:
            raise ValueError(f"statistics have {stats.n_mels} mel bins, the encoder {self.n_mels}")
        self.mel_mean.copy_(stats.mean)
        self.mel_std.copy_(stats.std)

    @staticmethod
    def remove_level(mel: Tensor, mask: Tensor) -> Tensor:
        """``(B, n_mels, T)`` minus each item's mean over its real frames (``mask`` ``(B, T)`` bool)."""
        m = mask[:, None, :].to(mel.dtype)
        level = (mel * m).sum((1, 2)) / (m.sum((1, 2)) * mel.shape[1]).clamp_min(1)
        return mel - level[:, None, None]

    def forward(self, mel: Tensor, lengths: Tensor) -> Tensor:
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"expected log-mels shaped (B, {self.n_mels}, T), got {tuple(mel.shape)}")
        mask = lengths_to_mask(lengths.to(mel.device), mel.shape[-1])
        x = (self.remove_level(mel, mask) - self.mel_mean[:, None]) / self.mel_std[:, None]
        # Padding must look exactly like the convs' zero padding: zero it before every conv.
        h = F.relu(self.inp(x * mask[:, None]))
        lengths = (lengths.to(mel.device) + 1) // 2  # frames of the stride-2 conv (kernel 5, padding 2)
        mask = lengths_to_mask(lengths, h.shape[-1])[:, None]
        for conv in self.convs:
            h = F.layer_norm(h.transpose(1, 2), h.shape[1:2]).transpose(1, 2) * mask
            h = h + F.relu(conv(h))
        h = h * mask
        score = self.attention(h).masked_fill(~mask, float("-inf"))
        w = torch.softmax(score, dim=-1)  # (B, 1, T'), zero on padding
        mean = (w * h).sum(-1)
        std = ((w * h * h).sum(-1) - mean * mean).clamp_min(1e-5).sqrt()
        return F.normalize(self.proj(torch.cat([mean, std], dim=1)), dim=-1)


def _check_mels(mels: Sequence[Tensor], n_mels: int, what: str = "log-mel") -> None:
    for i, m in enumerate(mels):
        if m.ndim != 2 or m.shape[0] != n_mels or m.shape[1] == 0:
            raise ValueError(
                f"{what} {i} has shape {tuple(m.shape)}; expected ({n_mels}, T) with T > 0 "
                "(compute it with the verifier's MelSpec)"
            )


def _pad(mels: Sequence[Tensor], n_mels: int) -> tuple[Tensor, Tensor]:
    """list of ``(n_mels, T_i)`` -> zero-padded ``(B, n_mels, max T)`` and lengths ``(B,)``."""
    _check_mels(mels, n_mels)
    lengths = torch.tensor([m.shape[1] for m in mels])
    out = torch.zeros(len(mels), n_mels, int(lengths.max()))
    for i, m in enumerate(mels):
        out[i, :, : m.shape[1]] = m.float()
    return out, lengths


# ---------------------------------------------------------------------------------------------- verifier
@dataclass
class SpeakerVerifier:
    """A trained :class:`SpeakerEncoder` (its per-bin normalization statistics are its ``mel_mean`` /
    ``mel_std`` buffers) and the ``MelSpec`` it expects; ``speakers`` are the training voices, ``info``
    how it was trained (seconds, clips, steps, final loss, parameters; ``cached``: the file it came from)."""

    encoder: SpeakerEncoder
    mel_spec: MelSpec
    speakers: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def embed_mels(self, mels: Sequence[Tensor], batch_size: int = 64) -> Tensor:
        """Raw log-mels ``(n_mels, T_i)`` in ``mel_spec`` -> unit-norm embeddings ``(N, D)``."""
        if not len(mels):
            raise ValueError("embed_mels needs at least one log-mel")
        self.encoder.eval()
        device = self.encoder.mel_mean.device
        out = []
        for i in range(0, len(mels), batch_size):
            x, lengths = _pad([m.detach().cpu() for m in mels[i : i + batch_size]], self.encoder.n_mels)
            out.append(self.encoder(x.to(device), lengths.to(device)).cpu())
        return torch.cat(out)

    def embed_wavs(self, wavs: Sequence[tuple[Tensor | np.ndarray, int]], batch_size: int = 64) -> Tensor:
        """``[(wav (S,), sample_rate), ...]`` -> ``(N, D)``: resampled to ``mel_spec.sample_rate``, then mel."""
        from tortoise_lite.audio.io import resample

        mels = []
        for wav, sr in wavs:
            if isinstance(wav, Tensor):
                wav = wav.detach().cpu().float().numpy()
            wav = resample(np.asarray(wav, dtype=np.float32).reshape(-1), int(sr), self.mel_spec.sample_rate)
            mels.append(self.mel_spec(wav))
        return self.embed_mels(mels, batch_size=batch_size)

    def save(self, path: str | os.PathLike) -> Path:
        """One ``torch.save`` file (tensors and plain types only), written atomically."""
        from tortoise_lite.data.cache import atomic_write_bytes

        blob = io.BytesIO()
        torch.save(
            {
                "format": _FORMAT,
                "version": _CACHE_VERSION,
                "config": self.encoder.config,
                "state_dict": self.encoder.state_dict(),
                "mel_spec": self.mel_spec.to_dict(),
                "speakers": list(self.speakers),
                "info": self.info,
            },
            blob,
        )
        return atomic_write_bytes(path, blob.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpeakerVerifier:
        path = Path(path)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no speaker verifier file") from None
        except Exception as e:  # truncated / not a torch file / unsafe content
            raise ValueError(
                f"{path}: not a readable speaker verifier ({e}); delete it and retrain"
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a speaker verifier file (saved by SpeakerVerifier.save)")
        encoder = SpeakerEncoder(**saved["config"])
        encoder.load_state_dict(saved["state_dict"])
        encoder.eval()
        return cls(
            encoder, MelSpec.from_dict(saved["mel_spec"]), list(saved["speakers"]), dict(saved["info"])
        )


# ---------------------------------------------------------------------------------------------- training
def train_speaker_encoder(
    clips: dict[str, list[Tensor]],
    mel_spec: MelSpec,
    steps: int = 600,
    seed: int = 0,
    crop_frames: int = 96,
    batch_size: int = 64,
    lr: float = 3e-3,
    margin: float = 0.2,
    scale: float = 30.0,
    channels: int = 128,
    dim: int = 128,
) -> SpeakerVerifier:
    """Train on ``clips`` (speaker name -> raw log-mels ``(n_mels, T)`` in ``mel_spec``).

    Each step draws ``batch_size`` clips uniformly (seeded) and a random crop of ``crop_frames`` from each
    (the whole clip when shorter); the loss is cross-entropy over the speakers on AM-softmax logits
    ``scale * (cos - margin * [target])``. Same clips + settings + seed = same weights.
    """
    names = sorted(clips)
    if len(names) < 2:
        raise ValueError(f"speaker training needs at least 2 speakers, got {len(names)}")
    empty = [n for n in names if not clips[n]]
    if empty:
        raise ValueError(f"speakers without clips: {empty}")
    t0 = time.monotonic()
    items = [(s, m.detach().float().cpu()) for s, n in enumerate(names) for m in clips[n]]
    _check_mels([m for _, m in items], mel_spec.n_mels, what="training clip")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    encoder = SpeakerEncoder(mel_spec.n_mels, channels=channels, dim=dim)
    encoder.set_stats(MelStats.from_mels(m - m.mean() for _, m in items))  # level-free, as forward sees them
    head = nn.Parameter(torch.randn(len(names), dim, generator=g) / dim**0.5)
    opt = torch.optim.Adam([*encoder.parameters(), head], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    encoder.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(items), (batch_size,), generator=g).tolist()
        x = torch.zeros(batch_size, mel_spec.n_mels, crop_frames)
        lengths = torch.zeros(batch_size, dtype=torch.long)
        for b, i in enumerate(idx):
            m = items[i][1]
            t = min(crop_frames, m.shape[1])
            start = int(torch.randint(m.shape[1] - t + 1, (1,), generator=g))
            x[b, :, :t] = m[:, start : start + t]
            lengths[b] = t
        y = torch.tensor([items[i][0] for i in idx])
        cos = encoder(x, lengths) @ F.normalize(head, dim=-1).T
        loss = F.cross_entropy(scale * (cos - margin * F.one_hot(y, len(names))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    encoder.eval()
    info = {
        "train_s": time.monotonic() - t0,
        "n_clips": len(items),
        "n_speakers": len(names),
        "steps": steps,
        "final_loss": float(np.mean(losses[-max(1, steps // 20) :])) if losses else float("nan"),
        "parameters": sum(p.numel() for p in encoder.parameters()),
    }
    return SpeakerVerifier(encoder, mel_spec, names, info)


def _clips_hash(clips: dict[str, list[Tensor]]) -> str:
    h = hashlib.sha256()
    for name in sorted(clips):
        h.update(name.encode() + b"\0")
        for m in clips[name]:
            a = np.ascontiguousarray(m.detach().float().cpu().numpy())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def load_or_train(
    clips: dict[str, list[Tensor]],
    mel_spec: MelSpec,
    cache_dir: str | Path | None = None,
    **train_settings,
) -> SpeakerVerifier:
    """:func:`train_speaker_encoder` once per (clips, MelSpec, settings): the verifier is kept in
    ``cache_dir/speaker-v<version>-<hash>.pt`` (default: the package cache, ``$TORTOISE_LITE_CACHE/speaker``)
    and reloaded by later calls; ``info["cached"]`` names the file when it was. An unreadable cache file
    is retrained and replaced."""
    from tortoise_lite.data.cache import default_cache_root, settings_hash

    bound = inspect.signature(train_speaker_encoder).bind(clips, mel_spec, **train_settings)
    bound.apply_defaults()
    settings = {k: v for k, v in bound.arguments.items() if k not in ("clips", "mel_spec")}
    key = settings_hash({"clips": _clips_hash(clips), "mel": mel_spec.key, **settings}, n=16)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_root() / "speaker"
    cache = folder / f"speaker-v{_CACHE_VERSION}-{key}.pt"
    if cache.is_file():
        try:
            verifier = SpeakerVerifier.load(cache)
        except ValueError:
            pass  # damaged: retrain below and replace it
        else:
            verifier.info["cached"] = str(cache)
            return verifier
    verifier = train_speaker_encoder(clips, mel_spec, **settings)
    verifier.save(cache)
    return verifier


# ---------------------------------------------------------------------------------------------- metrics
def equal_error_rate(embeddings: Tensor, labels: Sequence) -> float:
    """EER of cosine scores over all pairs ``i < j`` (target = same label).

    Operating points at every distinct score as threshold (accept ``score >= threshold``), plus
    "accept nothing"; the EER is where the straight line between the two points around the crossing
    meets ``FAR == FRR``. Perfectly separated scores give 0, scores that carry no information 0.5.
    """
    e = F.normalize(torch.as_tensor(embeddings).detach().double().cpu(), dim=-1)
    if e.ndim != 2 or len(labels) != e.shape[0]:
        raise ValueError(f"{len(labels)} labels for embeddings of shape {tuple(e.shape)}")
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    y = torch.from_numpy(y.reshape(-1))
    i, j = torch.triu_indices(len(y), len(y), offset=1)
    scores, target = (e[i] * e[j]).sum(-1), y[i] == y[j]
    n_t, n_n = int(target.sum()), int((~target).sum())
    if n_t == 0 or n_n == 0:
        raise ValueError("the EER needs pairs of the same speaker and pairs of different speakers")
    scores, order = torch.sort(scores, descending=True)
    target = target[order]
    _, counts = torch.unique_consecutive(scores, return_counts=True)
    last = torch.cumsum(counts, 0) - 1  # last index of each tie group: thresholds at distinct scores
    accepted_t = torch.cumsum(target.double(), 0)[last]
    far = torch.cat([torch.zeros(1), (last + 1 - accepted_t) / n_n])
    frr = torch.cat([torch.ones(1), 1 - accepted_t / n_t])
    d = far - frr  # rises from -1 to >= 0
    k = int(torch.nonzero(d >= 0)[0])
    t = float(-d[k - 1] / (d[k] - d[k - 1]))
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def _centroids(enroll: dict[str, Tensor]) -> tuple[list[str], Tensor]:
    """``{name: (K, D)}`` -> names and unit-norm centroids ``(V, D)`` of the unit-norm embeddings."""
    if not enroll:
        raise ValueError("no enrolled voices")
    cents = []
    for name, e in enroll.items():
        e = torch.as_tensor(e).float()
        if e.ndim != 2 or e.shape[0] == 0:
            raise ValueError(
                f"voice {name!r}: expected (K, D) enrollment embeddings with K > 0, got {tuple(e.shape)}"
            )
        cents.append(F.normalize(e, dim=-1).mean(0))
    return list(enroll), F.normalize(torch.stack(cents), dim=-1)


def identify(embeddings: Tensor, enroll: dict[str, Tensor]) -> list[str]:
    """Nearest enrolled centroid by cosine: ``(N, D)`` probes, ``{name: (K, D)}`` -> N names."""
    names, cents = _centroids(enroll)
    scores = F.normalize(torch.as_tensor(embeddings).float(), dim=-1) @ cents.T
    return [names[k] for k in scores.argmax(-1).tolist()]


def similarity_report(
    verifier: SpeakerVerifier, enroll: dict[str, list[Tensor]], probes: Sequence[tuple[Tensor, str]]
) -> dict:
    """How much each probe sounds like the voice it asked for, among the enrolled voices.

    ``enroll``: voice -> reference log-mels (``verifier.mel_spec``); ``probes``: ``(log-mel, requested
    voice)``. Returns ``cosine`` (mean cosine of each probe to its voice's centroid), ``accuracy``
    (nearest centroid is the requested voice), ``n_voices``, ``chance`` (``1 / n_voices``), ``n_probes``,
    the same figures ``per_voice``, and ``identified``: the nearest voice of each probe, in probe order.
    """
    unknown = sorted({name for _, name in probes} - set(enroll))
    if unknown:
        raise ValueError(f"probes ask for voices that are not enrolled: {unknown}")
    if not probes:
        raise ValueError("similarity_report needs at least one probe")
    enrolled = {n: verifier.embed_mels(mels) for n, mels in enroll.items()}
    names, cents = _centroids(enrolled)
    emb = verifier.embed_mels([m for m, _ in probes])
    want = torch.tensor([names.index(n) for _, n in probes])
    cos = (emb * cents[want]).sum(-1)
    picked = identify(emb, enrolled)
    hit = torch.tensor([p == n for p, (_, n) in zip(picked, probes)])
    per_voice = {}
    for k, n in enumerate(names):
        sel = want == k
        if bool(sel.any()):
            per_voice[n] = {
                "cosine": float(cos[sel].mean()),
                "accuracy": float(hit[sel].float().mean()),
                "n": int(sel.sum()),
            }
    return {
        "cosine": float(cos.mean()),
        "accuracy": float(hit.float().mean()),
        "n_voices": len(names),
        "chance": 1.0 / len(names),
        "n_probes": len(probes),
        "per_voice": per_voice,
        "identified": picked,
    }
