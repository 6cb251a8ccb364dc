"""FLOP counts, achieved FLOP/s and model-FLOP utilization (MFU) for the benchmarks.

``training_flops_per_frame(model)`` counts (``torch.utils.flop_counter.FlopCounterMode``: matmuls,
convolutions, attention) one ``TextToMel.loss`` forward + backward on a batch of equal-length items (no
padding), divided by its mel frames: the model FLOPs one real frame of training costs, denoiser included
with the text encoder, prior and duration predictor (the denoiser is nearly all of it:
``denoiser_flops`` gives its own share). ``inference_flops_per_frame`` is one denoiser forward (one NFE).

``throughput_report(flops_per_frame, frames_per_s, device, dtype)`` turns a measured rate into achieved
TFLOP/s and, where the device's dense peak is known (:data:`PEAK_TFLOPS`, or ``peak_tflops=``), MFU.
On a CPU the peak is not known: FLOP/s are reported, MFU only with ``peak_tflops``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

#: dense (no sparsity) peak TFLOP/s by device-name fragment: (bf16/fp16 tensor cores, tf32, fp32)
PEAK_TFLOPS: dict[str, tuple[float, float, float]] = {
    "H200": (989.4, 494.7, 66.9),
    "H100 PCIe": (756.0, 378.0, 51.2),
    "H100": (989.4, 494.7, 66.9),
    "GH200": (989.4, 494.7, 66.9),
    "B200": (2250.0, 1100.0, 80.0),
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.1, 183.2, 91.6),
    "L4": (121.0, 60.0, 30.3),
    "A10G": (70.0, 35.0, 31.2),
    "RTX 4090": (165.2, 82.6, 82.6),
}


def device_peak_tflops(device: torch.device | str, precision: str = "bf16") -> float | None:
    """Dense peak TFLOP/s of a CUDA device for ``precision`` (bf16/fp16, tf32, fp32), or None if unknown."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    col = {"bf16": 0, "fp16": 0, "tf32": 1, "fp32": 2}[precision]
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in name:
            return PEAK_TFLOPS[key][col]
    return None


def precision_of(trainer_precision: str | None, device: torch.device | str) -> str:
    """The peak column a Lightning ``precision`` string computes in (fp32 matmuls run as tf32 on CUDA
    when ``torch.set_float32_matmul_precision("high")``, as the app sets)."""
    p = str(trainer_precision or "32-true")
    if "bf16" in p:
        return "bf16"
    if "16" in p:
        return "fp16"
    if torch.device(device).type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "fp32"


def count_flops(fn, *args: Any, **kwargs: Any) -> int:
    """FLOPs of ``fn(*args, **kwargs)`` (whatever it runs, backward included if it calls it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _eager(*modules: Any):
    """Run ``nn.Module.compile``d modules eagerly inside (the counter sees every op)."""
    saved = [(m, getattr(m, "_compiled_call_impl", None)) for m in modules]
    for m, _ in saved:
        if hasattr(m, "_compiled_call_impl"):
            m._compiled_call_impl = None
    try:
        yield
    finally:
        for m, impl in saved:
            if impl is not None:
                m._compiled_call_impl = impl


def _synthetic_batch(model: Any, batch_size: int, frames: int, tokens: int = 24):
    """An unpadded batch of ``batch_size`` items of ``frames`` frames for ``model`` (random content)."""
    from tortoise_lite.data.batch import Batch

    device = model.device
    vocab = getattr(model.text_encoder, "vocab_size", 32)
    L = min(tokens, frames)
    toks = torch.randint(1, max(2, vocab), (batch_size, L), device=device)
    base, extra = divmod(frames, L)
    durations = torch.full((batch_size, L), base, dtype=torch.long, device=device)
    durations[:, :extra] += 1
    ml = torch.full((batch_size,), frames, dtype=torch.long, device=device)
    tl = torch.full((batch_size,), L, dtype=torch.long, device=device)
    speaker = torch.zeros(batch_size, dtype=torch.long, device=device) if model.n_speakers else None
    return Batch(
        mel=torch.randn(batch_size, model.n_mels, frames, device=device) - 5.0,
        mel_lengths=ml,
        mel_mask=torch.ones(batch_size, frames, dtype=torch.bool, device=device),
        tokens=toks,
        token_lengths=tl,
        token_mask=torch.ones(batch_size, L, dtype=torch.bool, device=device),
        durations=durations if model.mode == "aligned" else None,
        speaker=speaker,
        texts=["x"] * batch_size,
        ids=[str(i) for i in range(batch_size)],
    )


def training_flops_per_frame(model: Any, batch_size: int = 4, frames: int = 192) -> float:
    """Model FLOPs of one training step (``TextToMel.loss`` forward + backward) per real mel frame."""
    batch = _synthetic_batch(model, batch_size, frames)
    was = model.training
    model.train()
    try:

        def step() -> None:
            loss, _ = model.loss(batch)
            loss.backward()

        with _eager(model.denoiser):
            flops = count_flops(step)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return flops / (batch_size * frames)


def denoiser_flops_per_frame(model: Any, frames: int = 192, backward: bool = True) -> float:
    """FLOPs of the denoiser alone per frame: forward (one NFE), or forward + backward."""
    from tortoise_lite.models.conditioning import Cond

    den = model.denoiser
    device = model.device
    b = 2
    x = torch.randn(b, model.n_mels, frames, device=device, requires_grad=backward)
    mask = torch.ones(b, frames, dtype=torch.bool, device=device)
    t = torch.rand(b, device=device)
    if model.mode == "aligned":
        ch = den.cond.null_frames.shape[0]
        cond = Cond(frames=torch.randn(b, ch, frames, device=device), frame_mask=mask)
    else:
        d = den.cond.null_token.shape[0]
        cond = Cond(
            tokens=torch.randn(b, 8, d, device=device),
            token_mask=torch.ones(b, 8, dtype=torch.bool, device=device),
            frame_mask=mask,
        )

    def run() -> None:
        out = den(x, t, cond)
        if backward:
            out.square().mean().backward()

    was = den.training
    den.train(backward)
    try:
        with _eager(den), torch.set_grad_enabled(backward):
            flops = count_flops(run)
    finally:
        den.zero_grad(set_to_none=True)
        den.train(was)
    return flops / (b * frames)


def inference_flops_per_frame(model: Any, frames: int = 192) -> float:
    """FLOPs of one denoiser evaluation (one NFE, no guidance) per mel frame."""
    return denoiser_flops_per_frame(model, frames, backward=False)


def throughput_report(
    flops_per_frame: float,
    frames_per_s: float,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """``{"gflop_per_frame", "achieved_tflops", "peak_tflops", "mfu"}`` (mfu/peak None when unknown)."""
    achieved = flops_per_frame * frames_per_s / 1e12
    peak = peak_tflops if peak_tflops is not None else device_peak_tflops(device, precision)
    return {
        "gflop_per_frame": flops_per_frame / 1e9,
        "achieved_tflops": achieved,
        "precision": precision,
        "peak_tflops": peak,
        "mfu": (achieved / peak) if peak else None,
    }


def gpu_memory_peak_gb(device: torch.device | str = "cuda") -> float | None:
    """Peak allocated CUDA memory since the last reset, in GB (None off CUDA)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated(device) / 1e9


def format_report(r: dict[str, Any]) -> str:
    s = f"{r['gflop_per_frame']:.3f} GFLOP/frame, {r['achieved_tflops']:.3f} TFLOP/s achieved"
    if r.get("mfu") is not None:
        s += f", MFU {100 * r['mfu']:.1f}% of {r['peak_tflops']:.0f} TFLOP/s ({r['precision']} peak)"
    else:
        s += " (MFU: peak unknown here; pass a peak)"
    if r.get("gpu_mem_peak_gb") is not None:
        s += f", GPU memory peak {r['gpu_mem_peak_gb']:.2f} GB"
    return s


def inference_report(
    flops_per_frame: float,
    mels: list[torch.Tensor],
    items: int,
    seconds: float,
    nfe: int,
    device: torch.device | str = "cpu",
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Acoustic-model figures of one timed generation: mel frames/s, samples (utterances)/s, achieved
    TFLOP/s (``flops_per_frame`` per NFE, NFE times the generated frames), MFU, the GPU memory peak."""
    frames = sum(int(m.shape[-1]) for m in mels)
    rate = frames / seconds
    r = throughput_report(flops_per_frame * nfe, rate, device, precision_of(None, device), peak_tflops)
    r.update(mel_frames_per_s=rate, samples_per_s=items / seconds, gpu_mem_peak_gb=gpu_memory_peak_gb(device))
    r["summary"] = f"{rate:,.0f} mel frames/s, {items / seconds:,.2f} samples/s; " + format_report(r)
    return r


def checkpoint_training_report(ckpt: Any, frames_per_s: float, device: str = "cpu") -> dict[str, Any]:
    """``bench train``: FLOPs per training frame of a checkpoint's model, the achieved TFLOP/s and MFU at
    the run's measured ``frames_per_s`` (fit time, so validation and compilation count against it), and
    the GPU memory peak of this process."""
    from tortoise_lite.checkpoint import load_text_to_mel

    model, info = load_text_to_mel(ckpt)
    model = model.to(device)
    precision = (
        (info.config or {}).get("trainer", {}).get("precision") if isinstance(info.config, dict) else None
    )
    mem = gpu_memory_peak_gb(device)
    r = throughput_report(
        training_flops_per_frame(model), frames_per_s, device, precision_of(precision, device)
    )
    r["gpu_mem_peak_gb"] = mem
    return r
