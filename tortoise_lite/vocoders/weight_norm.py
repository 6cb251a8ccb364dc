"""Weight-norm key handling for checkpoints saved by other projects.

Weight norm stores a conv weight as a magnitude ``g`` and a direction ``v`` (``w = g * v / ||v||``, the
norm taken over every axis where ``g`` has size 1). Two spellings exist on disk:

* legacy ``torch.nn.utils.weight_norm``: ``<name>.weight_g`` / ``<name>.weight_v``
* ``torch.nn.utils.parametrizations.weight_norm`` (torch >= 2.1):
  ``<name>.parametrizations.weight.original0`` / ``...original1``

For inference the two factors are fused into a plain ``<name>.weight``, so one plain-conv architecture
loads both spellings (and weight-norm-free exports).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_LEGACY = (".weight_g", ".weight_v")
_PARAM = (".parametrizations.weight.original0", ".parametrizations.weight.original1")


def fuse(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``w = g * v / ||v||`` with the norm over the axes where ``g`` is broadcast (size 1)."""
    if g.ndim != v.ndim:
        raise ValueError(f"weight-norm g {tuple(g.shape)} and v {tuple(v.shape)} differ in rank")
    dims = [d for d in range(v.ndim) if g.shape[d] == 1]
    norm = torch.linalg.vector_norm(v, dim=dims, keepdim=True) if dims else v.abs()
    return g * v / norm


def fuse_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every (g, v) pair, in either spelling, by the fused ``.weight``; other keys are kept."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for g_suffix, v_suffix in (_LEGACY, _PARAM):
            if key.endswith(g_suffix):
                stem = key[: -len(g_suffix)]
                if stem + v_suffix not in state_dict:
                    raise KeyError(f"checkpoint has {key} but no matching {stem + v_suffix}")
                out[stem + ".weight"] = fuse(value.float(), state_dict[stem + v_suffix].float()).to(
                    value.dtype
                )
                break
            if key.endswith(v_suffix):
                break
        else:
            out[key] = value
    return out


def add_weight_norm(module: nn.Module) -> nn.Module:
    """Wrap every Conv1d / ConvTranspose1d / Conv2d weight in ``parametrizations.weight_norm`` (in place).

    Used to train with weight norm and to write state dicts in the upstream (weight-normed) layout.
    """
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)) and not hasattr(m, "parametrizations"):
            nn.utils.parametrizations.weight_norm(m)
    return module


def to_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``parametrizations.weight.original0/1`` keys to the legacy ``weight_g`` / ``weight_v``."""
    out = {}
    for key, value in state_dict.items():
        for new, old in zip(_PARAM, _LEGACY):
            if key.endswith(new):
                key = key[: -len(new)] + old
                break
        out[key] = value
    return out
