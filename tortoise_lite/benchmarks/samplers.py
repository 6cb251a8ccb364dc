"""Sampler quality vs NFE on problems with a known answer: ``python -m tortoise_lite.bench samplers``.

Two problems, each driven by the exact posterior mean ``E[x0 | x_t]`` (so only the *solver* error is measured):

1. ``linear`` (vs diffusers): a 16-D isotropic Gaussian mixture (6 uneven modes, std 0.3, radius 3) on DDPM's
   discrete linear betas (the view diffusers' schedulers use), so ours and diffusers' run on the same
   diffusion. Distance: sliced 2-Wasserstein to exact mixture samples (same start noise and projections for
   all); ``floor`` is the exact-vs-exact distance at the same sample size.
2. ``cosine`` (the default schedule, every sampler x grid): a *non-centred* 16-D mixture, 6 modes on the
   sphere of radius 8 clustered around one direction (|mean| 7.3), component std 0.05-0.35. Data far from
   the origin is what exposes a start that drops ``alpha(t_0) x0`` (the karras/logsnr grids start at VE
   sigma 80, alpha 0.0125, below the schedule's pure-noise end). Besides sliced-W2 it reports, for the
   deterministic samplers, the median per-sample distance to the *exact transport* of the same start noise
   (the probability-flow ODE from pure noise at t = 1, solved to ~1e-4 by DPM-Solver++(3M) with 1000 steps),
   and the *paired floor*: the sliced-W2 of that exact transport, i.e. an exact sample with the same luck
   as every deterministic sampler. (Exact-vs-exact sliced-W2 varies by +-25 % from draw to draw at any
   sample size here, mode counts being multinomial, so "floor + 5 %" only means something paired.)
   Verdict per sampler and grid: reaches the floor (SW <= 1.05 x paired floor at 50 and 100 NFE; stochastic
   samplers, which cannot be paired: within 2 standard deviations of the exact-vs-exact draws) and keeps
   converging (the median distance to the exact transport falls by >= 1.33x from 20 to 50 and from 50 to
   100 NFE).

Prints tables, writes ``samplers.json`` and ``samplers.png`` under ``--out`` (default bench_out/samplers/).
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
    CosineSchedule,
    IsotropicGaussianMixture,
    LinearBetaSchedule,
    Sampler,
    sliced_wasserstein,
)
from tortoise_lite.diffusion.samplers import STARTS

NFES = (5, 10, 20, 50)
COSINE_NFES = (10, 20, 50, 100)
#: the cosine problem's pass criteria (see the module docstring)
FLOOR_SLACK = 1.05
CONVERGENCE_RATIO = 0.75


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


def noncentred_mixture() -> IsotropicGaussianMixture:
    """The cosine problem's data: 16-D, 6 modes on the radius-8 sphere around one direction, std 0.05-0.35."""
    return IsotropicGaussianMixture.clustered(16, 6, 8.0, 0.5, (0.05, 0.35), seed=0)


def exact_transport(mix: IsotropicGaussianMixture, sch, noise: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE map of ``noise`` (N, D) from pure noise at ``t_max`` (cosine: alpha ~ 6e-17)
    to data, solved to ~1e-4 (DPM-Solver++(3M), 1000 trailing steps; 3000 steps moves it by < 5e-4)."""
    return Sampler(name="dpmpp_3m", grid="trailing", steps=1000)(mix.x0_fn(sch), sch, noise).x


def median_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Median over samples of ``|x_i - y_i|`` (robust to the rare sample that sits on a mode boundary)."""
    return float((x - y).norm(dim=1).median())


def run_cosine(n: int, nfes: list[int], start: str, seed: int = 0, repeats: int = 3) -> dict:
    """Every sampler and grid on the non-centred mixture with the cosine schedule (module docstring)."""
    mix = noncentred_mixture()
    sch = CosineSchedule()
    x0_fn = mix.x0_fn(sch)
    noise = torch.randn(n, mix.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ref = mix.sample(n, torch.Generator().manual_seed(seed + 1))
    exact = exact_transport(mix, sch, noise)
    paired_floor = sliced_wasserstein(exact, ref)
    draws = torch.tensor(
        [
            sliced_wasserstein(mix.sample(n, torch.Generator().manual_seed(seed + 10 + i)), ref)
            for i in range(8)
        ]
    )
    band = float(draws.mean() + 2.0 * draws.std())
    rows: list[dict] = []
    for name in SAMPLERS:
        stochastic = Sampler(name=name).stochastic
        for grid in GRIDS:
            for nfe in nfes:
                smp = Sampler(name=name, grid=grid, steps=steps_for_nfe(name, nfe), start=start)
                sws, meds = [], []
                for r in range(repeats if stochastic else 1):
                    res = smp(x0_fn, sch, noise, generator=torch.Generator().manual_seed(seed + 3 + r))
                    ok = bool(torch.isfinite(res.x).all())
                    sws.append(sliced_wasserstein(res.x, ref) if ok else math.inf)
                    meds.append(median_distance(res.x, exact) if ok else math.inf)
                rows.append(
                    dict(
                        sampler=name,
                        grid=grid,
                        nfe_budget=nfe,
                        nfe=res.nfe,
                        sw=sum(sws) / len(sws),
                        sw_runs=sws,
                        median_to_exact=None if stochastic else meds[0],
                    )
                )
    verdicts = cosine_verdicts(rows, paired_floor, band)
    return dict(
        problem=f"non-centred 16-D mixture (6 modes, radius 8, |mean| {float(mix.mean.norm()):.2f}, "
        "std 0.05-0.35), exact denoiser, cosine schedule",
        n=n,
        start=start,
        nfe=list(nfes),
        paired_floor=paired_floor,
        floor_draws=draws.tolist(),
        floor_mean=float(draws.mean()),
        floor_band=band,
        rows=rows,
        verdicts=verdicts,
    )


def cosine_verdicts(rows: list[dict], paired_floor: float, band: float) -> dict:
    """Per ``sampler/grid``: reaches the floor at >= 50 NFE and keeps converging (module docstring)."""
    out = {}
    for key in sorted({(r["sampler"], r["grid"]) for r in rows}):
        by = {r["nfe_budget"]: r for r in rows if (r["sampler"], r["grid"]) == key}
        late = [b for b in by if b >= 50]
        stochastic = by[late[0]]["median_to_exact"] is None if late else False
        limit = band if stochastic else FLOOR_SLACK * paired_floor
        reaches = bool(late) and all(by[b]["sw"] <= limit for b in late)
        converging = True
        if not stochastic:
            budgets = sorted(b for b in by if b >= 20)
            for lo, hi in zip(budgets, budgets[1:]):
                converging &= by[hi]["median_to_exact"] <= CONVERGENCE_RATIO * by[lo]["median_to_exact"]
        out["/".join(key)] = dict(reaches_floor=reaches, converging=bool(converging), sw_limit=limit)
    return out


def print_cosine(summary: dict) -> None:
    nfes = summary["nfe"]
    print(
        f"\n== {summary['problem']}, n={summary['n']}, start={summary['start']} ==\n"
        f"paired floor (exact transport of the same noise) {summary['paired_floor']:.4f}; exact-vs-exact draws "
        f"{summary['floor_mean']:.4f} +- {float(torch.tensor(summary['floor_draws']).std()):.4f} "
        f"(stochastic samplers' limit, mean + 2 sd: {summary['floor_band']:.4f})"
    )
    print(
        f"{'sampler':16s} {'grid':9s} "
        + " ".join(f"SW@{b:<4d}" for b in nfes)
        + "  "
        + " ".join(f"med@{b:<4d}" for b in nfes)
        + "  verdict"
    )
    for key, v in summary["verdicts"].items():
        name, grid = key.split("/")
        by = {r["nfe_budget"]: r for r in summary["rows"] if r["sampler"] == name and r["grid"] == grid}
        sw = " ".join(f"{by[b]['sw']:7.4f}" for b in nfes)
        med = " ".join(
            "      -" if by[b]["median_to_exact"] is None else f"{by[b]['median_to_exact']:8.1e}"
            for b in nfes
        )
        verdict = (
            "ok"
            if v["reaches_floor"] and v["converging"]
            else (
                ("above floor " if not v["reaches_floor"] else "") + ("stalls" if not v["converging"] else "")
            )
        )
        print(f"{name:16s} {grid:9s} {sw}  {med}  {verdict}")
    bad = [k for k, v in summary["verdicts"].items() if not (v["reaches_floor"] and v["converging"])]
    print(
        f"{len(summary['verdicts']) - len(bad)}/{len(summary['verdicts'])} sampler/grid pairs pass"
        + (f"; failing: {', '.join(bad)}" if bad else "")
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tortoise_lite.bench samplers", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, default=Path("bench_out/samplers"), help="output directory")
    ap.add_argument("--n", type=int, default=1500, help="samples per run (linear problem)")
    ap.add_argument("--nfe", type=int, nargs="+", default=list(NFES), help="NFE budgets (linear problem)")
    ap.add_argument("--no-diffusers", action="store_true", help="skip diffusers' schedulers")
    ap.add_argument("--problem", choices=("linear", "cosine", "both"), default="both")
    ap.add_argument("--cosine-n", type=int, default=5000, help="samples per run (cosine problem)")
    ap.add_argument(
        "--cosine-nfe", type=int, nargs="+", default=list(COSINE_NFES), help="NFE budgets (cosine)"
    )
    ap.add_argument("--start", choices=STARTS, default="auto", help="our samplers' start (Sampler.start)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t_start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    cosine = None
    if args.problem in ("cosine", "both"):
        cosine = run_cosine(args.cosine_n, args.cosine_nfe, args.start, args.seed)
        print_cosine(cosine)
        (args.out / "samplers_cosine.json").write_text(json.dumps(cosine, indent=1))
        print(f"wrote {args.out / 'samplers_cosine.json'} ({time.time() - t_start:.1f} s)")
    if args.problem == "cosine":
        return 0
    print("\n== linear-beta problem (radius-3 mixture), ours vs diffusers ==")

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
                smp = Sampler(name=name, grid=grid, steps=steps_for_nfe(name, nfe), start=args.start)
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
