"""Objectives: exact parameterization conversions, loss weightings, masks, time samplers (incl. DDP stats)."""

import math
import os

import pytest
import torch

from tortoise_lite.diffusion import (
    PREDICTIONS,
    CosineSchedule,
    EDMSchedule,
    FlowSchedule,
    LinearBetaSchedule,
    LogitNormalTimeSampler,
    LogNormalSigmaTimeSampler,
    LossAwareTimeSampler,
    MinSNRWeighting,
    Objective,
    P2Weighting,
    SoftMinSNRWeighting,
    UniformTimeSampler,
)

F64 = torch.float64
SCHEDULES = [
    LinearBetaSchedule(),
    CosineSchedule(),
    EDMSchedule(),
    FlowSchedule(),
    LinearBetaSchedule(zero_terminal_snr=True),
]


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize(
    "sch", SCHEDULES, ids=lambda s: type(s).__name__ + str(getattr(s, "zero_terminal_snr", ""))
)
def test_target_converts_back_to_x0_exactly(prediction, sch):
    obj = Objective(sch, prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, 4, generator=g, dtype=F64)
    noise = torch.randn(6, 3, 4, generator=g, dtype=F64)
    t = torch.linspace(sch.t_min + 0.01, sch.t_max - 0.01, 6, dtype=F64)
    x_t = sch.add_noise(x0, noise, t)
    raw = obj.target(x0, noise, t)
    torch.testing.assert_close(obj.to_x0(raw, x_t, t), x0, atol=1e-9, rtol=1e-9)
    # x0_scale: a raw error e maps to an x0 error of |e| / k
    k = obj.x0_scale(t)
    dx0 = obj.to_x0(raw + 1e-3, x_t, t) - x0
    torch.testing.assert_close(dx0.abs().flatten(1).mean(1), 1e-3 / k, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("prediction", ["v", "edm", "flow", "x0"])
def test_conversion_defined_at_zero_terminal_snr(prediction):
    sch = FlowSchedule()
    obj = Objective(sch, prediction=prediction)
    x0, noise = torch.randn(2, 5, dtype=F64), torch.randn(2, 5, dtype=F64)
    t = torch.ones(2, dtype=F64)  # alpha = 0
    out = obj.to_x0(obj.target(x0, noise, t), sch.add_noise(x0, noise, t), t)
    if prediction == "x0":
        torch.testing.assert_close(out, x0)
    else:  # x0 is not identifiable from x_t at alpha = 0, but the conversion must stay finite
        assert torch.isfinite(out).all()


def test_x0_fn_of_perfect_network_returns_x0():
    sch = CosineSchedule()
    x0 = torch.randn(4, 8, dtype=F64)
    noise = torch.randn(4, 8, dtype=F64)
    t = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=F64)
    for prediction in PREDICTIONS:
        obj = Objective(sch, prediction=prediction)
        x_t = sch.add_noise(x0, noise, t)
        seen = {}

        def net(inp, tt, obj=obj, seen=seen):
            seen["t"], seen["inp"] = tt, inp
            return obj.target(x0, noise, t)

        torch.testing.assert_close(obj.x0_fn(net)(x_t, t), x0, atol=1e-9, rtol=1e-9)
        assert seen["t"].dtype == torch.float32
        if prediction == "edm":  # the network sees c_in x_t (unit variance input)
            torch.testing.assert_close(seen["inp"], x_t * obj.c_in(t)[:, None])


def test_weightings_match_their_published_forms():
    sch = LinearBetaSchedule()
    t = torch.linspace(0.01, 0.99, 50, dtype=F64)
    snr = sch.snr(t)
    eps = Objective(sch, "eps", weighting=MinSNRWeighting(5.0))
    torch.testing.assert_close(eps.loss_weight(t), snr.clamp_max(5.0) / snr)  # Hang et al. eps form
    v = Objective(sch, "v", weighting=MinSNRWeighting(5.0))
    torch.testing.assert_close(v.loss_weight(t), snr.clamp_max(5.0) / (snr + 1))  # v form
    x0 = Objective(sch, "x0", weighting=MinSNRWeighting(5.0))
    torch.testing.assert_close(x0.loss_weight(t), snr.clamp_max(5.0))
    p2 = Objective(sch, "eps", weighting=P2Weighting(k=1.0, gamma=1.0))
    torch.testing.assert_close(p2.loss_weight(t), 1.0 / (1.0 + snr))  # Choi et al. lambda'
    # EDM weighting on EDM preconditioning = plain MSE on F; with sigma_data=1 equals the v-loss
    edm = Objective(EDMSchedule(), "edm", weighting="edm", sigma_data=0.5)
    torch.testing.assert_close(edm.loss_weight(t), torch.ones_like(t))
    ve = Objective(sch, "v", weighting="edm")
    torch.testing.assert_close(ve.loss_weight(t), torch.ones_like(t))
    soft = Objective(sch, "x0", weighting=SoftMinSNRWeighting(5.0)).loss_weight(t)
    assert bool((soft <= snr.clamp_max(5.0) + 1e-12).all()) and bool((soft >= 0.5 * snr.clamp_max(5.0)).all())


def test_masked_loss_ignores_padding():
    sch = CosineSchedule()
    obj = Objective(sch, "v")
    x0 = torch.randn(2, 3, 10)
    mask = torch.ones(2, 1, 10)
    mask[:, :, 6:] = 0

    def net(x, t):
        out = torch.zeros_like(x)
        out[..., 6:] = 1e3  # garbage only on padded frames
        return out

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    loss_masked, info = obj.loss(net, x0, mask=mask, generator=g1)
    loss_clean, _ = obj.loss(lambda x, t: torch.zeros_like(x), x0, mask=mask, generator=g2)
    torch.testing.assert_close(loss_masked, loss_clean)
    assert set(info) >= {"t", "loss_unweighted"} and info["t"].shape == (2,)
    assert loss_masked.shape == (2,) and loss_masked.requires_grad is False


@pytest.mark.parametrize(
    "sampler", [UniformTimeSampler(), LogitNormalTimeSampler(), LogNormalSigmaTimeSampler()], ids=type
)
def test_time_samplers_in_range(sampler):
    for sch in (CosineSchedule(), EDMSchedule(), FlowSchedule()):
        t, w = sampler.sample(4096, sch, torch.Generator().manual_seed(0))
        assert t.shape == (4096,) and float(t.min()) >= sch.t_min and float(t.max()) <= sch.t_max
        assert bool((w == 1).all())
    # EDM lognormal: ln(sigma) ~ N(-1.2, 1.2^2) away from the clamps
    t, _ = LogNormalSigmaTimeSampler().sample(20000, EDMSchedule(), torch.Generator().manual_seed(1))
    ln_s = torch.log(EDMSchedule().sigma(t))
    assert abs(float(ln_s.median()) + 1.2) < 0.05


def test_loss_aware_sampler_is_unbiased_and_focuses():
    sch = LinearBetaSchedule()
    las = LossAwareTimeSampler(num_bins=16, min_count=5, uniform_prob=0.01, decay=0.9)
    g = torch.Generator().manual_seed(0)

    def f(t):  # a loss concentrated at small t
        return torch.exp(-10 * t)

    for _ in range(50):
        t, w = las.sample(256, sch, g)
        assert bool((w == 1).all()) or las.warmed_up()
        las.update(t, f(t))
    assert las.warmed_up()
    p = las.probs()
    assert float(p[0]) > 5 * float(p[-1])
    t, w = las.sample(200000, sch, g)
    exact = (math.exp(-10 * sch.t_min) - math.exp(-10 * sch.t_max)) / (10 * (sch.t_max - sch.t_min))
    est = float((w * f(t)).mean())
    assert abs(est - exact) / exact < 0.01
    # variance of the importance-weighted estimator is lower than uniform's
    tu, _ = UniformTimeSampler().sample(200000, sch, g)
    assert float((w * f(t)).var()) < 0.5 * float(f(tu).var())
    state = las.state_dict()
    las2 = LossAwareTimeSampler(num_bins=16, min_count=5, uniform_prob=0.01)
    las2.load_state_dict(state)
    torch.testing.assert_close(las2.probs(), p)


def test_objective_feeds_loss_aware_sampler_only_in_training():
    las = LossAwareTimeSampler(num_bins=4, min_count=1)
    obj = Objective(CosineSchedule(), "eps", time_sampler=las)
    net = torch.nn.Linear(3, 3)
    x0 = torch.randn(8, 3)
    with torch.no_grad():
        obj.loss(lambda x, t: net(x), x0)
    assert float(las.counts.sum()) == 0
    loss, _ = obj.loss(lambda x, t: net(x), x0)
    loss.mean().backward()
    assert float(las.counts.sum()) == 8


def _ddp_worker(rank, world, port, q):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    las = LossAwareTimeSampler(num_bins=4, min_count=1)
    sch = CosineSchedule()
    # each rank only sees losses from "its" half of t: statistics must still cover all bins equally
    t = torch.tensor([0.1, 0.3]) if rank == 0 else torch.tensor([0.6, 0.9])
    las.update(t, torch.tensor([1.0, 2.0]) if rank == 0 else torch.tensor([3.0, 4.0]))
    las.sample(1, sch)
    q.put((rank, las.counts.tolist(), las.sq_loss.tolist()))
    dist.destroy_process_group()


def test_loss_aware_statistics_all_reduced_under_ddp():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    out = dict((r, (c, s)) for r, c, s in (q.get(timeout=60) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert out[0] == out[1]
    counts, sq = out[0]
    assert counts == [1.0, 1.0, 1.0, 1.0]
    assert sq == pytest.approx([1.0, 4.0, 9.0, 16.0])


def test_unknown_weighting_or_time_sampler_names_the_field_and_choices():
    from tortoise_lite.diffusion.objectives import Objective
    from tortoise_lite.diffusion.schedules import CosineSchedule

    with pytest.raises(ValueError, match=r"Objective.weighting must be one of \[.*'min_snr'.*got 'nope'"):
        Objective(CosineSchedule(), prediction="v", weighting="nope")
    with pytest.raises(ValueError, match=r"Objective.time_sampler must be one of \[.*'logit_normal'.*"):
        Objective(CosineSchedule(), prediction="v", time_sampler="nope")
