"""``EMA``: Lightning's ``EMAWeightAveraging`` with a multi-tensor update and no host-device sync.

Lightning's callback averages with a per-tensor ``avg_fn`` (three kernels per parameter and buffer), and
``AveragedModel`` keeps its update counter ``n_averaged`` on the model's device, where
``bool(n_averaged == 0)`` and ``if n_averaged > 0`` wait for the device on every step (and so would
copying a host counter to the device). Here the update is one ``torch._foreach_lerp_`` per device and
dtype (``ema + (1 - decay) (w - ema)``: the same EMA up to float rounding) and the counter lives on the
host. Checkpoints keep Lightning's layout (the counter is still ``averaging_state["n_averaged"]``), so runs
resume across the two callbacks.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.optim.swa_utils import AveragedModel


class _HostCountEMAModel(AveragedModel):
    """``AveragedModel`` whose EMA update never reads a device tensor on the host."""

    ema_decay: float = 0.999

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        if self.use_buffers:
            ema = [*self.module.parameters(), *self.module.buffers()]
            cur = [*model.parameters(), *model.buffers()]
        else:
            ema, cur = list(self.parameters()), list(model.parameters())
        cur = [c.detach().to(e.device) for e, c in zip(ema, cur, strict=True)]
        if int(self.n_averaged) == 0:  # a host tensor: no sync
            for e, c in zip(ema, cur):
                e.detach().copy_(c)
        else:
            groups: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
            for e, c in zip(ema, cur):
                g = groups.setdefault((e.device, e.dtype), ([], []))
                g[0].append(e.detach())
                g[1].append(c)
            w = 1.0 - self.ema_decay
            for (_, dtype), (es, cs) in groups.items():
                if dtype.is_floating_point or dtype.is_complex:
                    torch._foreach_lerp_(es, cs, w)
                else:
                    for e, c in zip(es, cs):
                        e.copy_(e * self.ema_decay + c * w)
        if not self.use_buffers:  # buffers follow the live model, as in AveragedModel
            for b_avg, b in zip(self.module.buffers(), model.buffers()):
                b_avg.detach().copy_(b.detach().to(b_avg.device))
        self.n_averaged += 1


class EMA(EMAWeightAveraging):
    """``EMAWeightAveraging(decay, update_every_n_steps, update_starting_at_step, ...)`` without the
    per-step sync and with a multi-tensor update (see the module doc)."""

    def __init__(self, decay: float = 0.999, **kwargs: Any) -> None:
        super().__init__(decay=decay, **kwargs)
        self.decay = float(decay)

    @property
    def state_key(self) -> str:
        return "EMAWeightAveraging"  # Lightning's key: checkpoints of either callback resume with the other

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        avg = self._average_model
        if avg is not None and not isinstance(avg, _HostCountEMAModel):
            avg.__class__ = _HostCountEMAModel
            avg.ema_decay = self.decay
            avg.n_averaged = avg.n_averaged.cpu()  # replaces the buffer (state_dict key unchanged)
