"""Samplers against analytic ground truth: Gaussian (exact ODE endpoint -> convergence order, NFE) and a
16-D Gaussian mixture (exact posterior mean -> sample distance vs the exact-vs-exact noise floor)."""

import math

import pytest
import torch

from tortoise_lite.diffusion import (
    SAMPLERS,
    CosineSchedule,
    DiagonalGaussian,
    EDMSchedule,
    FlowSchedule,
    IsotropicGaussianMixture,
    LinearBetaSchedule,
    Sampler,
    make_generators,
    sliced_wasserstein,
    time_grid,
)
from tortoise_lite.diffusion.samplers import randn, start_coefficient

F64 = torch.float64


def expected_nfe(name: str, steps: int, from_zero_alpha: bool = False) -> int:
    """Heun: 2 per step, Euler on the last step (and on a first step from alpha ~ 0); midpoint: 2 per step."""
    return {"heun": 2 * steps - 1 - int(from_zero_alpha), "flow_midpoint": 2 * steps}.get(name, steps)


@pytest.fixture(scope="module")
def gauss():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(8, generator=g, dtype=F64)
    std = 0.2 + 1.5 * torch.rand(8, generator=g, dtype=F64)
    return DiagonalGaussian(mu, std), torch.randn(32, 8, generator=g, dtype=F64)


# (sampler, schedule, grid, expected order band)
ORDER_CASES = [
    ("euler", EDMSchedule(), "karras", (0.85, 1.2)),
    ("ddim", LinearBetaSchedule(), "karras", (0.85, 1.2)),
    ("ddim", CosineSchedule(), "logsnr", (0.85, 1.2)),
    ("heun", EDMSchedule(), "karras", (1.8, 2.6)),
    ("heun", LinearBetaSchedule(), "logsnr", (1.8, 2.6)),
    ("dpmpp_2m", EDMSchedule(), "karras", (1.8, 2.6)),
    ("dpmpp_2m", CosineSchedule(), "logsnr", (1.7, 2.6)),
    ("dpmpp_3m", LinearBetaSchedule(), "karras", (2.6, 4.5)),
    ("flow_euler", FlowSchedule(), "trailing", (0.85, 1.2)),
    ("flow_midpoint", FlowSchedule(), "uniform", (1.8, 3.3)),
]


@pytest.mark.parametrize("name,sch,grid,band", ORDER_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_convergence_order_on_gaussian(gauss, name, sch, grid, band):
    """Errors at N and 2N steps against the exact probability-flow endpoint give the solver's order."""
    dist, noise = gauss
    errs = []
    for n in (16, 32):
        smp = Sampler(name=name, steps=n, grid=grid)
        ts = smp.time_grid(sch)
        res = smp(dist.x0_fn(sch), sch, noise)
        assert res.nfe == expected_nfe(name, n), f"{name}: NFE {res.nfe}"
        # the exact ODE from where the sampler starts: pure noise at the grid's first point, or, when the grid
        # starts below a schedule end that is pure noise (cosine logsnr/karras), pure noise at t_max
        t_start = sch.t_max if start_coefficient(sch, float(ts[0])) != 0.0 else float(ts[0])
        x_start = float(sch.sigma(t_start)) * noise
        if name.startswith("flow"):
            ref = dist.ode_solution(sch, x_start, t_start, 0.0)
        else:  # exact ODE to the last evaluation point, then the same explicit last step x = a' D + s' eps
            t_last = float(ts[-2])
            x_last = dist.ode_solution(sch, x_start, t_start, t_last)
            d = dist.x0_fn(sch)(x_last, torch.full((32,), t_last, dtype=F64))
            a, s = (float(v) for v in sch.alpha_sigma(t_last))
            a1, s1 = (float(v) for v in sch.alpha_sigma(0.0))
            ref = a1 * d + s1 * (x_last - a * d) / s
        errs.append(float((res.x - ref).abs().max()))
    order = math.log2(errs[0] / errs[1])
    assert band[0] <= order <= band[1], f"{name}/{grid}: order {order:.2f}, errors {errs}"


def test_euler_ddim_and_ancestral_equivalences():
    """Known identities: Euler in VE coordinates == DDIM(eta=0); DDPM == DDIM(eta=1) == Euler ancestral."""
    sch = CosineSchedule()
    mix = IsotropicGaussianMixture.random(4, 3, 2.0, 0.3, seed=0)
    x0f = mix.x0_fn(sch)
    noise = torch.randn(16, 4, dtype=F64)
    a = Sampler(name="euler", steps=12, grid="karras")(x0f, sch, noise).x
    b = Sampler(name="ddim", steps=12, grid="karras", eta=0.0)(x0f, sch, noise).x
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    outs = []
    for name, eta in (("ddpm", None), ("ddim", 1.0), ("euler_ancestral", 1.0)):
        r = Sampler(name=name, steps=12, grid="logsnr", eta=eta)(
            x0f, sch, noise, generator=make_generators(3, 16)
        )
        outs.append(r.x)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-10, rtol=0)
    torch.testing.assert_close(outs[0], outs[2], atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["ddpm", "dpmpp_2m_sde", "euler_ancestral", "dpmpp_2m"])
def test_seeded_results_do_not_depend_on_batch_size(name):
    sch = FlowSchedule()
    mix = IsotropicGaussianMixture.random(6, 3, 2.0, 0.3, seed=0)
    smp = Sampler(name=name, steps=6, grid="logsnr")
    full = smp(mix.x0_fn(sch), sch, (8, 6), generator=make_generators(11, 8), dtype=F64).x
    part = smp(mix.x0_fn(sch), sch, (3, 6), generator=make_generators(11, 3, offset=5), dtype=F64).x
    torch.testing.assert_close(full[5:], part, atol=1e-12, rtol=0)
    other = smp(mix.x0_fn(sch), sch, (8, 6), generator=make_generators(12, 8), dtype=F64).x
    assert float((other - full).abs().max()) > 1e-3


@pytest.mark.parametrize("name", ["ddpm", "dpmpp_2m_sde", "euler_ancestral"])
def test_seeded_results_do_not_depend_on_padding(name):
    """A stochastic sampler on a time-masked item gives the same frames whether the batch is padded or not."""
    sch = FlowSchedule()
    smp = Sampler(name=name, steps=6, grid="logsnr")

    def x0_fn_for(T):
        mask = torch.zeros(1, 1, T, dtype=F64)
        mask[..., :5] = 1  # the item's real length is 5 frames

        def x0_fn(x, t):
            return 0.5 * x * mask

        return x0_fn

    short = smp(
        x0_fn_for(5), sch, randn((1, 4, 5), make_generators(7, 1), dtype=F64), generator=make_generators(8, 1)
    )
    long = smp(
        x0_fn_for(9), sch, randn((1, 4, 9), make_generators(7, 1), dtype=F64), generator=make_generators(8, 1)
    )
    torch.testing.assert_close(long.x[..., :5], short.x, atol=1e-12, rtol=0)


def test_grids():
    for sch in (
        LinearBetaSchedule(),
        CosineSchedule(),
        EDMSchedule(),
        FlowSchedule(),
        LinearBetaSchedule(num_train_timesteps=1000),
    ):
        for kind in ("uniform", "trailing", "karras", "logsnr"):
            ts = time_grid(sch, 7, kind)
            assert ts.dtype == F64 and ts.shape == (8,) and float(ts[-1]) == 0.0
            assert bool((ts[1:] < ts[:-1]).all()), (sch, kind, ts)
    sch = EDMSchedule()
    torch.testing.assert_close(
        sch.sigma(time_grid(sch, 5, "karras")[:-1]), sch.sigma(time_grid(sch, 5, "uniform")[:-1])
    )
    lam = LinearBetaSchedule().log_snr(time_grid(LinearBetaSchedule(), 6, "logsnr")[:-1])
    torch.testing.assert_close(lam.diff(), torch.full((5,), float(lam.diff()[0]), dtype=F64))
    torch.testing.assert_close(
        time_grid(CosineSchedule(), 4, "trailing"), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=F64)
    )
    with pytest.raises(ValueError, match="kind must be"):
        time_grid(sch, 4, "bogus")
    with pytest.raises(ValueError, match="Sampler.name"):
        Sampler(name="nope")


@pytest.fixture(scope="module")
def mixture_setup():
    mix = IsotropicGaussianMixture.random(16, 6, 3.0, 0.3, seed=1)
    n = 1000
    floors = torch.tensor(
        [
            sliced_wasserstein(
                mix.sample(n, torch.Generator().manual_seed(100 + i)),
                mix.sample(n, torch.Generator().manual_seed(200 + i)),
                n_proj=128,
            )
            for i in range(6)
        ]
    )
    threshold = float(floors.mean() + 3 * floors.std())
    ref = mix.sample(n, torch.Generator().manual_seed(7))
    return mix, ref, threshold


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_reaches_exact_mixture(mixture_setup, name):
    """Driven by the exact posterior mean, each sampler lands within the exact-vs-exact noise floor."""
    mix, ref, threshold = mixture_setup
    sch = CosineSchedule()  # alpha(1) ~ 0: the pure-noise start is exact
    dists = {}
    for steps in (3, 40):
        res = Sampler(name=name, steps=steps, grid="trailing")(
            mix.x0_fn(sch), sch, (ref.shape[0], 16), generator=torch.Generator().manual_seed(5), dtype=F64
        )
        assert res.nfe == expected_nfe(name, steps, from_zero_alpha=True)
        assert torch.isfinite(res.x).all()
        dists[steps] = sliced_wasserstein(res.x, ref, n_proj=128)
    assert dists[40] < threshold, f"{name}: SW {dists[40]:.4f} above noise-floor threshold {threshold:.4f}"
    assert dists[3] > dists[40], f"{name}: error did not fall with steps: {dists}"


def test_trajectory_and_callback():
    sch = FlowSchedule()
    mix = IsotropicGaussianMixture.random(4, 2, 2.0, 0.3, seed=0)
    seen = []
    res = Sampler(name="dpmpp_2m", steps=5, record_trajectory=True)(
        mix.x0_fn(sch), sch, torch.randn(3, 4), callback=lambda i, x, d: seen.append(i)
    )
    assert len(res.trajectory) == 6 and seen == [0, 1, 2, 3, 4] and res.x.dtype == torch.float32
    torch.testing.assert_close(res.trajectory[-1], res.x)
    res2 = Sampler(name="dpmpp_2m", steps=5)(mix.x0_fn(sch), sch, torch.randn(3, 4), steps=9)
    assert res2.nfe == 9 and res2.trajectory is None


def test_offset_shifts_result_and_callback_but_not_the_model_input():
    """``offset``: the model diffuses r = x0 - offset; everything reported is in x0 space."""
    from tortoise_lite.diffusion.schedules import CosineSchedule

    noise = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    offset = torch.full_like(noise, 4.0)
    seen_inputs, reported = [], []

    def x0_fn(x, t):
        seen_inputs.append(float(x.mean()))
        return 0.5 * x

    sampler = Sampler(name="dpmpp_2m", steps=4, record_trajectory=True)
    plain = sampler(x0_fn, CosineSchedule(), noise)
    plain_inputs = list(seen_inputs)
    seen_inputs.clear()
    shifted = sampler(
        x0_fn, CosineSchedule(), noise, offset=offset, callback=lambda i, x, d: reported.append(d)
    )
    assert seen_inputs == plain_inputs  # the model never sees the offset
    torch.testing.assert_close(shifted.x, plain.x + offset)
    torch.testing.assert_close(shifted.trajectory[-1], plain.trajectory[-1] + offset)
    assert len(reported) == 4 and all(float(d.mean()) > 3.0 for d in reported)
