"""Schedules: float64 math, log-SNR inverses, derivatives, discrete view, zero terminal SNR, Hydra configs."""

from pathlib import Path

import pytest
import torch

from tortoise_lite.diffusion import (
    CosineSchedule,
    EDMSchedule,
    FlowSchedule,
    LinearBetaSchedule,
    Schedule,
    SigmoidSchedule,
)

F64 = torch.float64
CONF = Path(__file__).resolve().parents[1] / "conf"


def all_schedules():
    return [
        LinearBetaSchedule(),
        LinearBetaSchedule(num_train_timesteps=1000),
        LinearBetaSchedule(zero_terminal_snr=True),
        CosineSchedule(),
        SigmoidSchedule(),
        EDMSchedule(),
        FlowSchedule(),
    ]


@pytest.mark.parametrize("sch", all_schedules(), ids=lambda s: repr(s)[:60])
def test_log_snr_roundtrip_monotone_float64(sch: Schedule):
    t = torch.linspace(sch.t_min, sch.t_max, 257, dtype=torch.float32)[1:-1]
    lam = sch.log_snr(t)
    assert lam.dtype == F64 and sch.alpha(t).dtype == F64 and sch.sigma(t).dtype == F64
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must decrease with t"
    torch.testing.assert_close(sch.t_from_log_snr(lam), t.to(F64), atol=1e-9, rtol=0)
    a, s = sch.alpha_sigma(t)
    torch.testing.assert_close(lam, 2 * torch.log(a / s), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("sch", all_schedules(), ids=lambda s: repr(s)[:60])
def test_derivatives_match_finite_differences(sch: Schedule):
    t = torch.linspace(0.1, 0.9, 9, dtype=F64) * (sch.t_max - sch.t_min) + sch.t_min
    # keep the discrete view's evaluation points off its knots (derivative jumps there)
    t = t + 0.37 / 1000
    da, ds = sch.d_alpha_sigma(t)
    e = 1e-6
    torch.testing.assert_close(da, (sch.alpha(t + e) - sch.alpha(t - e)) / (2 * e), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ds, (sch.sigma(t + e) - sch.sigma(t - e)) / (2 * e), atol=1e-5, rtol=1e-5)


def test_vp_is_variance_preserving_and_endpoints():
    t = torch.linspace(0, 1, 101, dtype=F64)
    for sch in (
        LinearBetaSchedule(),
        CosineSchedule(),
        SigmoidSchedule(),
        LinearBetaSchedule(zero_terminal_snr=True),
    ):
        a, s = sch.alpha_sigma(t)
        torch.testing.assert_close(a * a + s * s, torch.ones_like(t), atol=1e-12, rtol=0)
        assert abs(float(a[0]) - 1.0) < 1e-12 and float(s[0]) < 1e-12
    assert float(SigmoidSchedule().alpha(1.0)) == 0.0
    assert float(LinearBetaSchedule(zero_terminal_snr=True).alpha(1.0)) == 0.0
    assert float(LinearBetaSchedule().alpha(1.0)) > 1e-3  # plain linear betas leave signal at t=1
    flow = FlowSchedule(sigma_min=1e-4)
    assert float(flow.alpha(1.0)) == 0.0 and float(flow.sigma(1.0)) == 1.0 and float(flow.sigma(0.0)) == 1e-4
    edm = EDMSchedule()
    assert abs(float(edm.sigma(edm.t_min)) - 0.002) < 1e-12 and float(edm.sigma(1.0)) == 80.0


def test_zero_terminal_snr_keeps_start_and_inverse():
    base, z = LinearBetaSchedule(), LinearBetaSchedule(zero_terminal_snr=True)
    assert abs(float(z.alpha(0.0)) - float(base.alpha(0.0))) < 1e-12
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    torch.testing.assert_close(z.t_from_log_snr(z.log_snr(t)), t, atol=1e-9, rtol=0)
    assert bool((z.log_snr(t) < base.log_snr(t)).all())


def test_discrete_view_matches_ddpm_cumprod():
    sch = LinearBetaSchedule(num_train_timesteps=1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    torch.testing.assert_close(sch.alphas_cumprod(), torch.cumprod(1 - betas, 0), atol=1e-14, rtol=1e-12)
    # the continuous VP-SDE form is close to (not equal to) the discrete one
    cont = LinearBetaSchedule()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    assert float((cont.log_snr(t) - sch.log_snr(t)).abs().max()) < 0.05


def test_add_noise_shapes_dtypes_and_errors():
    sch = CosineSchedule()
    x0 = torch.randn(3, 2, 5, dtype=torch.bfloat16)
    noise = torch.randn(3, 2, 5, dtype=torch.bfloat16)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = sch.add_noise(x0, noise, t)
    assert xt.dtype == torch.bfloat16 and xt.shape == x0.shape
    torch.testing.assert_close(xt[0].float(), x0[0].float())
    a, s = sch.alpha_sigma(t[1:2])
    ref = float(a) * x0[1].double() + float(s) * noise[1].double()
    torch.testing.assert_close(xt[1].double(), ref.to(torch.bfloat16).double())
    with pytest.raises(ValueError, match="t must have shape"):
        sch.add_noise(x0, noise, torch.zeros(2))
    with pytest.raises(ValueError, match="t_min"):
        CosineSchedule(t_min=0.5, t_max=0.4)


def test_hydra_configs_instantiate():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from tortoise_lite.diffusion import Objective, Sampler

    schedules = sorted((CONF / "schedule").glob("*.yaml"))
    assert len(schedules) >= 5
    built = []
    for f in schedules:
        cfg = OmegaConf.load(f)
        assert "_target_" in cfg, f
        built.append(instantiate(cfg))
        assert isinstance(built[-1], Schedule)
    for f in sorted((CONF / "objective").glob("*.yaml")):
        cfg = OmegaConf.load(f)
        assert "_target_" in cfg and "schedule" not in cfg, f
        obj = instantiate(cfg, schedule=built[0])
        assert isinstance(obj, Objective)
    names = set()
    for f in sorted((CONF / "sampler").glob("*.yaml")):
        smp = instantiate(OmegaConf.load(f))
        assert isinstance(smp, Sampler)
        names.add(smp.name)
    from tortoise_lite.diffusion import SAMPLERS

    assert names == set(SAMPLERS)
