"""``torch.compile`` of a denoiser, in place, with a clean fallback to eager.

``compile_denoiser(module, device=...)`` compiles the module's forward in place (``nn.Module.compile``: the
parameter names and ``state_dict`` keys do not change, so checkpoints and the EMA copy are unaffected) when
the backend can run on ``device``; otherwise it warns once and leaves the module eager. A compile error at
the first call also falls back to eager with a warning (the call is repeated eagerly).

Shapes: batches padded to a multiple of ``data.pad_to_multiple`` and bucketed by length reuse a few
graphs; with ``dynamic=None`` (the default) the first change of a size compiles one dynamic graph, so
frame-budget batches (varying batch size and length) do not recompile every step. Random ops inside the
denoiser (guidance dropout) draw from the same generator as in eager mode (``fallback_random``), so a
compiled and an eager model given the same seed see the same dropout.
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any

import torch
from torch import nn


def compile_unavailable_reason(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` (inductor) cannot run on ``device`` here, or None when it can."""
    device = torch.device(device)
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return "torch.compile is not supported on this Python/platform"
    except Exception as e:  # pragma: no cover - broken installs
        return f"torch._dynamo is unavailable ({e})"
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton

            if not has_triton():
                return "Triton is not installed (inductor needs it for CUDA kernels)"
        except Exception as e:  # pragma: no cover
            return f"cannot check for Triton ({e})"
    elif device.type == "cpu":
        if not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")):
            return "no C++ compiler on PATH (inductor builds CPU kernels with one)"
    return None


class _EagerFallback:
    """The compiled call; on an exception from the compiler the module goes back to eager for good."""

    def __init__(self, module: nn.Module, compiled: Any) -> None:
        self.module = module
        self.compiled = compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.compiled(*args, **kwargs)
        except Exception as e:
            if not _is_compiler_error(e):
                raise
            lines = [
                ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Set TORCH")
            ]
            detail = " / ".join(lines[:3])[:400]
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {detail}); the denoiser runs eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            self.module._compiled_call_impl = None
            return self.module._call_impl(*args, **kwargs)


def _is_compiler_error(e: BaseException) -> bool:
    mod = type(e).__module__ or ""
    return mod.startswith(("torch._dynamo", "torch._inductor", "torch._functorch", "triton")) or (
        "BackendCompilerFailed" in type(e).__name__
    )


def compile_denoiser(
    module: nn.Module,
    device: torch.device | str = "cpu",
    mode: str | None = None,
    dynamic: bool | None = None,
    fullgraph: bool = False,
    backend: str = "inductor",
) -> bool:
    """Compile ``module``'s forward in place; returns whether it was compiled (False: eager, warned)."""
    reason = compile_unavailable_reason(device) if backend == "inductor" else None
    if reason is not None:
        warnings.warn(
            f"compile requested but {reason}: the denoiser runs eagerly", RuntimeWarning, stacklevel=2
        )
        return False
    if backend == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True  # same random streams as eager (guidance dropout)
    module.compile(mode=mode, dynamic=dynamic, fullgraph=fullgraph, backend=backend)
    module._compiled_call_impl = _EagerFallback(module, module._compiled_call_impl)
    return True
