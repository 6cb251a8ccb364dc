"""Our DDIM / DPM-Solver++ trajectories equal diffusers' schedulers driven by the same exact denoiser on the
same timesteps (linear-beta discrete schedule view, clip_sample off)."""

import pytest
import torch

from tortoise_lite.diffusion import IsotropicGaussianMixture, LinearBetaSchedule, Sampler

diffusers = pytest.importorskip("diffusers")

B, D = 32, 16


def _run_pair(dscheduler, name, steps, eta=None, seed=0):
    sch = LinearBetaSchedule(num_train_timesteps=1000)
    mix = IsotropicGaussianMixture.random(D, 4, 3.0, 0.5, seed=0)
    x0f = mix.x0_fn(sch)
    dscheduler.set_timesteps(steps)
    timesteps = dscheduler.timesteps
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(seed))
    # the same per-step noise sequence our sampler draws from a generator seeded alike
    noise_gen = torch.Generator().manual_seed(seed + 1)
    theirs = [x]
    for n in timesteps:
        t = torch.full((B,), float(sch.t_of_timestep(int(n))), dtype=torch.float64)
        kwargs = {}
        if eta is not None:
            kwargs["variance_noise"] = torch.randn(B, D, generator=noise_gen)
            if isinstance(dscheduler, diffusers.DDIMScheduler):
                kwargs["eta"] = eta
        x = dscheduler.step(x0f(x, t), n, x, **kwargs).prev_sample
        theirs.append(x)
    ts = torch.cat([sch.t_of_timestep(timesteps.to(torch.float64)), torch.zeros(1, dtype=torch.float64)])
    res = Sampler(name=name, eta=eta, record_trajectory=True)(
        x0f,
        sch,
        theirs[0] / float(sch.sigma(ts[0])),
        ts=ts,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    assert res.nfe == len(timesteps)
    assert len(res.trajectory) == len(theirs)
    err = max(float((a - b).abs().max()) for a, b in zip(res.trajectory, theirs))
    assert err < 1e-4, f"{name}: max trajectory difference {err:.2e}"
    assert float(theirs[-1].abs().max()) > 1.0  # a real sample, not a collapsed one


COMMON = dict(
    num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, prediction_type="sample"
)


@pytest.mark.parametrize("spacing,steps", [("trailing", 10), ("leading", 20)])
def test_ddim_matches_diffusers(spacing, steps):
    d = diffusers.DDIMScheduler(**COMMON, clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing)
    _run_pair(d, "ddim", steps)


def test_ddim_eta_matches_diffusers():
    # 1000 / steps must be an integer: diffusers' DDIM steps to ``t - 1000 // steps``, not to the next timestep
    d = diffusers.DDIMScheduler(
        **COMMON, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    )
    _run_pair(d, "ddim", 8, eta=0.7)


@pytest.mark.parametrize("spacing,steps", [("trailing", 10), ("linspace", 25)])
@pytest.mark.parametrize("order,name", [(2, "dpmpp_2m"), (3, "dpmpp_3m")])
def test_dpm_solver_pp_matches_diffusers(spacing, steps, order, name):
    d = diffusers.DPMSolverMultistepScheduler(
        **COMMON,
        solver_order=order,
        algorithm_type="dpmsolver++",
        timestep_spacing=spacing,
        final_sigmas_type="zero",
    )
    _run_pair(d, name, steps)


def test_sde_dpm_solver_pp_matches_diffusers():
    d = diffusers.DPMSolverMultistepScheduler(
        **COMMON,
        solver_order=2,
        algorithm_type="sde-dpmsolver++",
        timestep_spacing="trailing",
        final_sigmas_type="zero",
    )
    _run_pair(d, "dpmpp_2m_sde", 12, eta=1.0)
