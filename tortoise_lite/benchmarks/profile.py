"""Training-step profile: ``python -m tortoise_lite.bench profile [--steps N] [--warmup N] [--out DIR] [overrides]``.

Trains a few steps of a recipe (default ``+recipe=speech``, the CPU preset unless ``trainer=gpu`` is
given) through the real app (Lightning, callbacks, logging, the bucketed loader) and writes to ``--out``:

* ``trace.json``: a ``torch.profiler`` Chrome trace of the ``--steps`` steps after ``--warmup`` (open it in
  ``chrome://tracing`` or https://ui.perfetto.dev); every Lightning hook is a named range in it;
* ``top_ops.txt``: the top operators by self time (CPU, and CUDA on a GPU);
* ``profile.json`` and the printed tables: wall time per step, the share of each Lightning action (the
  training step, backward, optimizer step, the data loader's ``next``, the EMA callback, logging / the
  progress bar), host-device synchronizations counted while profiling (``aten::item``,
  ``aten::_local_scalar_dense``: each one waits for the device on a GPU), and micro-timings of the
  pieces that run on the host every step: the bucket sampler (one epoch's batches), the collate of a
  batch, the EMA update and the loss-aware time sampler (``sample`` + ``update``).

Nothing is asserted; the figures are per step on this machine (the box may be shared: compare best-of).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

SYNC_OPS = ("aten::item", "aten::_local_scalar_dense")


class RecordFunctionProfiler:
    """A Lightning ``Profiler`` that opens a ``torch.profiler.record_function`` range per Lightning action
    (so the hooks appear by name in the trace) and sums their host wall time."""

    def __new__(cls, *args: Any, **kwargs: Any):  # built lazily: Lightning is imported only when used
        from lightning.pytorch.profilers import Profiler

        class _Impl(Profiler):
            def __init__(self) -> None:
                super().__init__()
                self.open: dict[str, list[tuple[Any, float]]] = defaultdict(list)
                self.total: dict[str, float] = defaultdict(float)
                self.calls: dict[str, int] = defaultdict(int)

            def start(self, action_name: str) -> None:
                rf = torch.profiler.record_function(action_name)
                rf.__enter__()
                self.open[action_name].append((rf, time.perf_counter()))

            def stop(self, action_name: str) -> None:
                if not self.open.get(action_name):
                    return
                rf, t0 = self.open[action_name].pop()
                rf.__exit__(None, None, None)
                self.total[action_name] += time.perf_counter() - t0
                self.calls[action_name] += 1

            def summary(self) -> str:
                return ""

        return _Impl()


def _step_profiler_callback(warmup: int, steps: int, out: Path, cuda: bool, trace: bool = True):
    from lightning.pytorch.callbacks import Callback

    class ProfileSteps(Callback):
        """Times (and with ``trace`` runs ``torch.profiler`` over) training batches ``warmup`` ..
        ``warmup + steps - 1``. The device is synchronized only at the start and the end of the window,
        so the steps overlap as in a real run."""

        def __init__(self) -> None:
            self.prof = None
            self.started = False
            self.t0 = 0.0
            self.seconds = 0.0
            self.frames = 0
            self.items = 0
            self.step_times: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == warmup and not self.started:
                self.started = True
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                if trace:
                    acts = [torch.profiler.ProfilerActivity.CPU]
                    if cuda:
                        acts.append(torch.profiler.ProfilerActivity.CUDA)
                    self.prof = torch.profiler.profile(activities=acts, record_shapes=True)
                    self.prof.__enter__()
                self.t0 = time.perf_counter()
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.started and not self.seconds:
                self.step_times.append(time.perf_counter() - self._t)
                self.frames += int(getattr(pl_module, "_batch_frames", 0) or 0)
                self.items += len(batch)
                if trainer.global_step >= warmup + steps:
                    if cuda:
                        torch.cuda.synchronize()
                    self.seconds = time.perf_counter() - self.t0
                    if self.prof is not None:
                        self.prof.__exit__(None, None, None)
                        self.prof.export_chrome_trace(str(out / "trace.json"))

    return ProfileSteps()


def _flops_report(module: Any, rate: float, device: str, precision: str, peak: float | None) -> dict:
    """FLOPs per frame of the run's model (one loss forward + backward), achieved TFLOP/s, MFU, memory."""
    from tortoise_lite.benchmarks.flops import (
        gpu_memory_peak_gb,
        precision_of,
        throughput_report,
        training_flops_per_frame,
    )

    mem = gpu_memory_peak_gb(device)
    if module is None:
        return {}
    fpf = training_flops_per_frame(module.model)
    r = throughput_report(fpf, rate, device, precision_of(precision, device), peak)
    r["gpu_mem_peak_gb"] = mem
    r["parameters_M"] = sum(p.numel() for p in module.model.parameters()) / 1e6
    return r


def _micro(dm: Any, module: Any, repeats: int = 5) -> dict[str, float]:
    """Host-side pieces timed alone (best of ``repeats``), in milliseconds."""
    from lightning.pytorch.callbacks import EMAWeightAveraging

    from tortoise_lite.data.sampler import LengthBucketBatchSampler
    from tortoise_lite.diffusion.objectives import LossAwareTimeSampler

    def best(fn) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts) * 1e3

    lengths = dm.train_set.lengths
    sampler = LengthBucketBatchSampler(lengths, batch_size=dm.batch_size, max_frames=dm.max_frames, seed=0)
    first = sampler.all_batches(0)[0]
    collate = dm.collate()
    items = [dm.train_set[i] for i in first]
    res = {
        "bucket_sampler_epoch_ms": best(lambda: sampler.all_batches(0)),
        "dataset_getitem_batch_ms": best(lambda: [dm.train_set[i] for i in first]),
        "collate_batch_ms": best(lambda: collate(items)),
    }
    from tortoise_lite.training.ema import EMA

    for name, cb in {"ema_lightning": EMAWeightAveraging(decay=0.995), "ema_ours": EMA(decay=0.995)}.items():
        cb.setup(None, module, "fit")
        avg = cb._average_model
        avg.update_parameters(module)  # the first update copies
        res[f"{name}_update_ms"] = best(lambda avg=avg: avg.update_parameters(module))
    schedule = module.model.objective.schedule
    las = LossAwareTimeSampler()
    b = len(first)
    t, _ = las.sample(b, schedule)
    for _ in range(12):  # warm it up (past min_count per bin) so sample() uses the learned p
        las.update(torch.rand(32 * 16, dtype=torch.float64), torch.rand(32 * 16))
    res["loss_aware_sample_ms"] = best(lambda: las.sample(b, schedule))
    res["loss_aware_update_ms"] = best(lambda: las.update(t, torch.rand(b)))
    return {k: round(v, 3) for k, v in res.items()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tortoise_lite.bench profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--recipe", default="speech")
    ap.add_argument("--steps", type=int, default=8, help="profiled training steps")
    ap.add_argument("--warmup", type=int, default=3, help="steps before profiling starts")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default="bench_out/profile")
    ap.add_argument("--rows", type=int, default=25, help="rows of the operator table")
    ap.add_argument(
        "--no-trace",
        dest="trace",
        action="store_false",
        help="time the steps only (steady-state throughput, FLOP/s and MFU; no profiler)",
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak for MFU where it is not in the known-GPU table (e.g. a CPU)",
    )
    ap.add_argument("--run-dir", default=None, help="keep the run (its last.ckpt) here instead of a temp dir")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (e.g. trainer=gpu compile.enabled=true)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from hydra import compose, initialize_config_dir

    from tortoise_lite.paths import config_dir
    from tortoise_lite.training.app import run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = any(o.startswith("trainer=") and o.split("=", 1)[1] in ("gpu", "ddp") for o in args.overrides)
    cuda = cuda and torch.cuda.is_available()
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or f"{tmp}/run"
        overrides = [
            f"+recipe={args.recipe}", f"output_dir={run_dir}", f"trainer.max_steps={total}",
            "trainer.max_time=null", "trainer.limit_val_batches=0", "samples.enabled=false",
            f"checkpoint.every_n_train_steps={total + 1}", *args.overrides,
        ]  # fmt: skip
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        profiler = RecordFunctionProfiler()
        cb = _step_profiler_callback(args.warmup, args.steps, out, cuda, args.trace)
        captured: dict[str, Any] = {}

        from lightning.pytorch.callbacks import Callback

        class Keep(Callback):  # remembers the module and datamodule for the micro-timings
            def on_fit_start(self, trainer, pl_module) -> None:
                captured["module"], captured["dm"] = pl_module, trainer.datamodule

        run(cfg, callbacks=[cb, Keep()], profiler=profiler)
    if not cb.seconds:
        print("error: the run ended before the profiled steps (raise --steps or check the overrides)")
        return 2
    rate = cb.frames / cb.seconds
    device = "cuda" if cuda else "cpu"
    perf = _flops_report(captured.get("module"), rate, device, str(cfg.trainer.precision), args.peak_tflops)
    n = len(cb.step_times)
    summary = {
        "recipe": args.recipe, "overrides": args.overrides, "threads": torch.get_num_threads(),
        "device": device, "steps": n, "step_ms": 1e3 * cb.seconds / n, "mel_frames_per_s": rate,
        "samples_per_s": cb.items / cb.seconds, **perf,
    }  # fmt: skip
    from tortoise_lite.benchmarks.flops import format_report

    print(f"{n} steps after {args.warmup} warm-up steps: {summary['step_ms']:.1f} ms/step, "
          f"{rate:,.0f} mel frames/s, {summary['samples_per_s']:,.1f} items/s; {format_report(perf)}")  # fmt: skip
    if not args.trace:
        (out / "throughput.json").write_text(json.dumps(summary, indent=2))
        print(f"wrote {out / 'throughput.json'}")
        return 0
    prof = cb.prof
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=args.rows)
    (out / "top_ops.txt").write_text(table)
    events = prof.key_averages()
    syncs = {e.key: e.count for e in events if e.key in SYNC_OPS}
    step_ms = summary["step_ms"]
    # Lightning actions over the whole run (host wall time per step; nested actions overlap their parents)
    actions = {
        k: {"ms_per_call": 1e3 * v / profiler.calls[k], "calls": profiler.calls[k]}
        for k, v in sorted(profiler.total.items(), key=lambda kv: -kv[1])
        if profiler.calls[k] >= total
    }
    top = [
        {"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / n, "calls_per_step": e.count / n}
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]
    ]
    micro = _micro(captured["dm"], captured["module"]) if "dm" in captured else {}
    report = {
        **summary, "profiled_steps": n, "step_ms_min": 1e3 * min(cb.step_times),
        "host_syncs_per_step": {k: v / n for k, v in syncs.items()}, "lightning_actions": actions,
        "top_ops": top, "host_micro_ms": micro,
    }  # fmt: skip
    (out / "profile.json").write_text(json.dumps(report, indent=2))
    print(table)
    print(f"{n} profiled steps: {step_ms:.1f} ms/step (min {report['step_ms_min']:.1f}), "
          f"{report['mel_frames_per_s']:,.0f} mel frames/s (under the profiler)")  # fmt: skip
    print(
        "host-device syncs per step: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report["host_syncs_per_step"].items())
    )
    print("Lightning actions (host wall ms per call, whole run):")
    for k, v in list(actions.items())[:24]:
        print(f"  {v['ms_per_call']:9.3f}  x{v['calls']:<5} {k}")
    print("host pieces alone (ms, best of 5): " + ", ".join(f"{k} {v}" for k, v in micro.items()))
    print(f"wrote {out / 'trace.json'}, {out / 'top_ops.txt'}, {out / 'profile.json'}")
    return 0
