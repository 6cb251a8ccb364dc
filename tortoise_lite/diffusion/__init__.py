"""Diffusion core: schedules, objectives, samplers and guidance. Knows nothing about audio or text.

Shapes are generic: data ``x`` is (B, ...) and times ``t`` are (B,) in [0, 1] (t=0 clean, t=1 noise).
"""

from .analytic import DiagonalGaussian, IsotropicGaussianMixture, mmd_rbf, sliced_wasserstein
from .guidance import cfg_x0_fn, guidance_scale
from .objectives import (
    PREDICTIONS,
    EDMWeighting,
    LogitNormalTimeSampler,
    LogNormalSigmaTimeSampler,
    LossAwareTimeSampler,
    MinSNRWeighting,
    Objective,
    P2Weighting,
    SoftMinSNRWeighting,
    TimeSampler,
    UniformTimeSampler,
    UniformWeighting,
    Weighting,
)
from .samplers import GRIDS, SAMPLERS, Sampler, SampleResult, make_generators, randn, randn_like, time_grid
from .schedules import (
    CosineSchedule,
    EDMSchedule,
    FlowSchedule,
    LinearBetaSchedule,
    Schedule,
    SigmoidSchedule,
    VPSchedule,
)

__all__ = [
    "Schedule",
    "VPSchedule",
    "LinearBetaSchedule",
    "CosineSchedule",
    "SigmoidSchedule",
    "EDMSchedule",
    "FlowSchedule",
    "Objective",
    "PREDICTIONS",
    "Weighting",
    "UniformWeighting",
    "MinSNRWeighting",
    "SoftMinSNRWeighting",
    "P2Weighting",
    "EDMWeighting",
    "TimeSampler",
    "UniformTimeSampler",
    "LogitNormalTimeSampler",
    "LogNormalSigmaTimeSampler",
    "LossAwareTimeSampler",
    "Sampler",
    "SampleResult",
    "SAMPLERS",
    "GRIDS",
    "time_grid",
    "make_generators",
    "randn",
    "randn_like",
    "cfg_x0_fn",
    "guidance_scale",
    "DiagonalGaussian",
    "IsotropicGaussianMixture",
    "sliced_wasserstein",
    "mmd_rbf",
]
