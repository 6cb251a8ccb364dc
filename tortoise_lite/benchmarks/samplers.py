"""Sampler quality vs NFE on a problem with a known answer: ``python -m tortoise_lite.bench samplers``.

Data: a 16-D isotropic Gaussian mixture (6 uneven modes, std 0.3, radius 3) whose exact posterior mean
``E[x0 | x_t]`` drives every sampler (so only the *solver* error is measured). Schedule: DDPM's discrete
linear betas (the view diffusers' schedulers use), so ours and diffusers' run on the same diffusion.
Distance: sliced 2-Wasserstein to exact mixture samples (same start noise and projections for all);
``floor`` is the exact-vs-exact distance at the same sample size.

Prints a table, writes ``samplers.json`` and ``samplers.png`` under ``--out`` (default bench_out/samplers/).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from tortoise_lite.diffusion import (
    GRIDS,
    SAMPLERS,
    IsotropicGaussianMixture,
    LinearBetaSchedule,
    Sampler,
    sliced_wasserstein,
)

NFES = (5, 10, 20, 50)


def steps_for_nfe(name: str, nfe: int) -> int:
    """Grid intervals giving at most ``nfe`` model evaluations."""
    if name == "heun":
        return max(1, (nfe + 1) // 2)  # 2N - 1 evaluations
    if name == "flow_midpoint":
        return max(1, nfe // 2)
    return nfe


def _diffusers_configs():
    import diffusers as d

    base = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    return {
        "DDIM(trailing)": lambda: d.DDIMScheduler(
            **base, prediction_type="sample", clip_sample=False, timestep_spacing="trailing"
        ),
        "DPMSolver++2M": lambda: d.DPMSolverMultistepScheduler(
            **base, prediction_type="sample", solver_order=2
        ),
        "DPMSolver++3M": lambda: d.DPMSolverMultistepScheduler(
            **base, prediction_type="sample", solver_order=3
        ),
        "DPMSolver++2M(karras)": lambda: d.DPMSolverMultistepScheduler(
            **base, prediction_type="sample", solver_order=2, use_karras_sigmas=True
        ),
        "UniPC(bh2)": lambda: d.UniPCMultistepScheduler(**base, prediction_type="sample"),
        "UniPC(karras)": lambda: d.UniPCMultistepScheduler(
            **base, prediction_type="sample", use_karras_sigmas=True
        ),
        "DEIS": lambda: d.DEISMultistepScheduler(**base, prediction_type="sample"),
        "Euler(karras)": lambda: d.EulerDiscreteScheduler(
            **base, prediction_type="sample", use_karras_sigmas=True
        ),
        "Heun(karras)": lambda: d.HeunDiscreteScheduler(
            **base, prediction_type="sample", use_karras_sigmas=True
        ),
    }


def run_diffusers(
    make, nfe: int, x0_fn, sch: LinearBetaSchedule, noise: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Drive a diffusers scheduler with the exact denoiser; returns (sample, NFE)."""
    s = make()
    heun = type(s).__name__.startswith("Heun")
    s.set_timesteps((nfe + 1) // 2 if heun else nfe)
    x = noise * float(s.init_noise_sigma)
    count = 0
    B = x.shape[0]
    for n in s.timesteps:
        inp = s.scale_model_input(x, n)  # VP-scaled x_t for sigma-space schedulers, identity otherwise
        t = torch.full((B,), float(sch.t_of_timestep(float(n))), dtype=torch.float64)
        out = x0_fn(inp, t)
        count += 1
        x = s.step(out, n, x).prev_sample
    return x, count


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench samplers", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, default=Path("bench_out/samplers"), help="output directory")
    ap.add_argument("--n", type=int, default=1500, help="samples per run")
    ap.add_argument("--nfe", type=int, nargs="+", default=list(NFES), help="NFE budgets")
    ap.add_argument("--no-diffusers", action="store_true", help="skip diffusers' schedulers")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t_start = time.time()

    mix = IsotropicGaussianMixture.random(16, 6, 3.0, 0.3, seed=1)
    sch = LinearBetaSchedule(num_train_timesteps=1000)
    x0_fn = mix.x0_fn(sch)
    n = args.n
    noise = torch.randn(n, 16, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    ref = mix.sample(n, torch.Generator().manual_seed(args.seed + 1))
    floor = sliced_wasserstein(mix.sample(n, torch.Generator().manual_seed(args.seed + 2)), ref)

    rows: list[dict] = []
    for name in SAMPLERS:
        for grid in GRIDS:
            for nfe in args.nfe:
                smp = Sampler(name=name, grid=grid, steps=steps_for_nfe(name, nfe))
                res = smp(x0_fn, sch, noise, generator=torch.Generator().manual_seed(args.seed + 3))
                sw = sliced_wasserstein(res.x, ref) if torch.isfinite(res.x).all() else math.inf
                rows.append(dict(source="ours", sampler=name, grid=grid, nfe_budget=nfe, nfe=res.nfe, sw=sw))
    if not args.no_diffusers:
        try:
            configs = _diffusers_configs()
        except ImportError:
            configs = {}
            print("diffusers not installed: skipping its schedulers")
        for label, make in configs.items():
            for nfe in args.nfe:
                x, used = run_diffusers(make, nfe, x0_fn, sch, noise.float())
                x = x.double()
                sw = sliced_wasserstein(x, ref) if torch.isfinite(x).all() else math.inf
                rows.append(
                    dict(source="diffusers", sampler=label, grid="-", nfe_budget=nfe, nfe=used, sw=sw)
                )

    # table
    print(f"exact-vs-exact floor (SW, n={n}): {floor:.4f}")
    header = f"{'source':9s} {'sampler':22s} {'grid':9s} " + " ".join(f"NFE{b:>4d}" for b in args.nfe)
    print(header)
    keys = sorted({(r["source"], r["sampler"], r["grid"]) for r in rows}, key=lambda k: (k[0] != "ours", k))
    for key in keys:
        vals = {r["nfe_budget"]: r for r in rows if (r["source"], r["sampler"], r["grid"]) == key}
        cells = " ".join(f"{vals[b]['sw']:7.4f}" + ("*" if vals[b]["nfe"] != b else " ") for b in args.nfe)
        print(f"{key[0]:9s} {key[1]:22s} {key[2]:9s} {cells}")
    print("(* = ran with fewer NFE than the budget: 2-evaluation steps)")
    best = {}
    for b in args.nfe:
        for src in ("ours", "diffusers"):
            cand = [r for r in rows if r["source"] == src and r["nfe_budget"] == b]
            if cand:
                r = min(cand, key=lambda r: r["sw"])
                best[f"{src}@{b}"] = r
                print(f"best {src:9s} at NFE {b:3d}: {r['sampler']}/{r['grid']}  SW {r['sw']:.4f}")
    elapsed = time.time() - t_start
    print(f"elapsed {elapsed:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    summary = dict(
        problem="16-D Gaussian mixture, exact denoiser, linear-beta discrete schedule",
        n=n,
        floor=floor,
        nfe=args.nfe,
        rows=rows,
        best=best,
        elapsed_s=elapsed,
    )
    (args.out / "samplers.json").write_text(json.dumps(summary, indent=1))
    _plot(rows, floor, args.nfe, args.out / "samplers.png")
    print(f"wrote {args.out / 'samplers.json'} and {args.out / 'samplers.png'}")
    return 0


def _plot(rows: list[dict], floor: float, nfes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(GRIDS), figsize=(5 * len(GRIDS), 4.5), sharey=True)
    diff = sorted({r["sampler"] for r in rows if r["source"] == "diffusers"})
    for ax, grid in zip(axes, GRIDS):
        for name in SAMPLERS:
            pts = sorted(
                (r["nfe"], r["sw"])
                for r in rows
                if r["source"] == "ours" and r["sampler"] == name and r["grid"] == grid
            )
            ax.plot(*zip(*pts), marker="o", label=name)
        for label in diff:
            pts = sorted(
                (r["nfe"], r["sw"]) for r in rows if r["source"] == "diffusers" and r["sampler"] == label
            )
            ax.plot(*zip(*pts), ls="--", color="grey", alpha=0.6, lw=1)
        ax.axhline(floor, color="k", lw=0.8, ls=":", label="exact-vs-exact floor")
        ax.set(xscale="log", yscale="log", title=f"ours, grid={grid} (grey dashed: diffusers)", xlabel="NFE")
        ax.set_ylim(floor * 0.8, 3.0)
    axes[0].set_ylabel("sliced W2 to exact mixture")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
