"""The GPU path's pieces, checked on the CPU (issue 18): frame-budget batching, the compiled denoiser
against eager, the sync-free EMA, fused-AdamW selection, FLOP counting, the gpu preset's config."""

from __future__ import annotations

import functools
import os

import pytest
import torch

from tortoise_lite.data.sampler import LengthBucketBatchSampler

N_MELS = 16


def _lengths(n: int = 97, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(40, 260, (n,), generator=g).tolist()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_frame_budget_batches_cover_every_item_once_per_epoch(world):
    lengths = _lengths()
    budget = 1024
    for epoch in range(3):
        seen: list[int] = []
        per_rank = []
        for rank in range(world):
            s = LengthBucketBatchSampler(
                lengths, batch_size=None, max_frames=budget, rank=rank, world_size=world
            )
            s.set_epoch(epoch)
            batches = list(s)
            per_rank.append(len(batches))
            assert len(batches) == len(s)
            for b in batches:
                assert max(lengths[i] for i in b) * len(b) <= budget  # padded frames within the budget
                seen += b
        assert sorted(seen) == list(range(len(lengths)))  # every item exactly once
        assert len(set(per_rank)) == 1  # the same number of steps on every rank


def test_frame_budget_resume_continues_the_same_batches():
    lengths = _lengths()
    full = LengthBucketBatchSampler(lengths, batch_size=None, max_frames=1024, seed=3)
    full.set_epoch(1)
    batches = list(full)
    resumed = LengthBucketBatchSampler(lengths, batch_size=None, max_frames=1024, seed=3)
    resumed.load_state_dict({"seed": 3, "epoch": 1, "start_batch": 2})
    assert list(resumed) == batches[2:]
    assert len(resumed) == len(batches)  # len() stays the whole epoch (issue 16)


def test_gpu_preset_config():
    from hydra import compose, initialize_config_dir

    from tortoise_lite.paths import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        gpu = compose("train", overrides=["+recipe=speech", "trainer=gpu"])
        ddp = compose("train", overrides=["+recipe=speech", "trainer=ddp"])
        cpu = compose("train", overrides=["+recipe=speech"])
        off = compose("train", overrides=["+recipe=speech", "trainer=gpu", "compile.enabled=false"])
    for c in (gpu, ddp):
        assert c.data.batch_size is None and c.data.max_frames > 0 and c.compile.enabled
        assert list(c.model.denoiser.channels) == [96, 192, 384]
    assert cpu.data.batch_size == 16 and cpu.data.max_frames is None and not cpu.compile.enabled
    assert not off.compile.enabled


# ---------------------------------------------------------------------------------------------- EMA
def test_ema_matches_lightning_and_keeps_its_counter_on_the_host():
    import lightning as L
    from lightning.pytorch.callbacks import EMAWeightAveraging

    from tortoise_lite.training.ema import EMA

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 4)
            )

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(0)
    model = Net()
    ours, theirs = EMA(decay=0.9, device="cpu"), EMAWeightAveraging(decay=0.9, device="cpu")
    assert ours.state_key == theirs.state_key
    for cb in (ours, theirs):
        cb.setup(None, model, "fit")
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 8))  # updates the BatchNorm buffers
        ours._average_model.update_parameters(model)
        theirs._average_model.update_parameters(model)
    assert ours._average_model.n_averaged.device.type == "cpu"
    sa, sb = ours._average_model.state_dict(), theirs._average_model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-6, atol=1e-6, msg=k)


# ------------------------------------------------------------------------------------ fused AdamW
def test_fused_adamw_only_on_cuda_and_only_when_not_chosen():
    from tortoise_lite.training.module import TextToMelModule

    net = torch.nn.Linear(2, 2)
    m = TextToMelModule(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3))
    assert m._fused_kwargs() == {}  # on the CPU
    m._device = torch.device("cuda", 0)  # what Lightning sets when the module moves to a GPU
    assert m._fused_kwargs() == {"fused": True}
    chosen = TextToMelModule(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, foreach=True))
    chosen._device = torch.device("cuda", 0)
    assert chosen._fused_kwargs() == {}
    sgd = TextToMelModule(net, optimizer=functools.partial(torch.optim.SGD, lr=1e-3))
    sgd._device = torch.device("cuda", 0)
    assert sgd._fused_kwargs() == {}


# ------------------------------------------------------------------------------------------ FLOPs
def _tiny_model(**kw):
    from tortoise_lite.audio.mel import MelSpec
    from tortoise_lite.diffusion.objectives import Objective
    from tortoise_lite.diffusion.schedules import CosineSchedule
    from tortoise_lite.models.text_to_mel import TextToMel
    from tortoise_lite.models.unet1d import UNet1D
    from tortoise_lite.text.encoders import LearnedTextEncoder
    from tortoise_lite.text.tokenizers import CharTokenizer

    torch.manual_seed(0)
    return TextToMel(
        denoiser=functools.partial(UNet1D, channels=(16, 32), attn_depth=1, heads=2, groups=4, **kw),
        objective=Objective(CosineSchedule(), prediction="v"),
        text_encoder=functools.partial(LearnedTextEncoder, dim=24, depth=1, heads=2),
        tokenizer=CharTokenizer(),
        mel_spec=MelSpec(n_mels=N_MELS, fmax=None),
        cond_dim=24,
    )


def test_flop_counts_and_report():
    from tortoise_lite.benchmarks.flops import (
        denoiser_flops_per_frame,
        inference_flops_per_frame,
        throughput_report,
        training_flops_per_frame,
    )

    model = _tiny_model()
    train = training_flops_per_frame(model, batch_size=2, frames=64)
    den_train = denoiser_flops_per_frame(model, frames=64)
    infer = inference_flops_per_frame(model, frames=64)
    # backward costs about twice the forward
    assert 2.5 * infer < den_train < 3.5 * infer
    assert den_train < train  # (in this tiny model the duration predictor costs as much as the denoiser)
    # conv_in alone: 2 * (2 * n_mels * 3) * channels[0] FLOPs per frame
    assert infer > 2 * 2 * N_MELS * 3 * 16
    r = throughput_report(train, 1000.0, "cpu", "fp32")
    assert r["mfu"] is None and r["achieved_tflops"] == pytest.approx(train * 1000 / 1e12)
    r = throughput_report(train, 1000.0, "cpu", "fp32", peak_tflops=1.0)
    assert r["mfu"] == pytest.approx(r["achieved_tflops"])


# ---------------------------------------------------------------------------------------- compile
def test_compile_unavailable_falls_back_to_eager_with_a_warning(monkeypatch):
    from tortoise_lite.models import compile as comp

    model = _tiny_model()
    monkeypatch.setattr(comp, "compile_unavailable_reason", lambda device: "no compiler here")
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        assert comp.compile_denoiser(model.denoiser, device="cpu") is False
    assert model.denoiser._compiled_call_impl is None


def test_compile_error_at_first_call_falls_back_to_eager():
    from tortoise_lite.models import compile as comp
    from tortoise_lite.models.conditioning import Cond

    class BackendCompilerFailed(Exception):  # the name torch._dynamo's wrapped errors carry
        pass

    model = _tiny_model()
    den = model.denoiser.eval()
    x, t = torch.randn(2, N_MELS, 32), torch.rand(2)
    cond = Cond(frames=torch.randn(2, N_MELS, 32), frame_mask=torch.ones(2, 32, dtype=torch.bool))
    with torch.no_grad():
        ref = den(x, t, cond)

    def broken(*a, **k):
        raise BackendCompilerFailed("inductor exploded")

    den._compiled_call_impl = comp._EagerFallback(den, broken)
    with pytest.warns(RuntimeWarning, match="runs eagerly"), torch.no_grad():
        out = den(x, t, cond)
    torch.testing.assert_close(out, ref)
    assert den._compiled_call_impl is None


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("TORTOISE_LITE_COMPILE_TESTS") != "1",
    reason="inductor compiles for minutes on a 2-core CPU; set TORTOISE_LITE_COMPILE_TESTS=1 to run it",
)
@pytest.mark.xfail(
    reason="torch 2.14.1 inductor: the dynamic-shape graph compiled at the second batch size fails "
    "(TensorReferenceAnalysis has no attribute 'python_mod'); the denoiser then falls back to eager (issue 18)",
    strict=False,
)
def test_compiled_denoiser_equals_eager():
    """Same seed, same batch: the compiled model's losses and gradients equal the eager model's (float
    tolerance), over batches of different sizes and padded lengths (one dynamic graph, no recompile per
    step), with guidance dropout on (the same random stream as eager)."""
    import torch._dynamo

    from tortoise_lite.models.compile import compile_denoiser, compile_unavailable_reason

    if compile_unavailable_reason("cpu"):
        pytest.skip(compile_unavailable_reason("cpu"))
    from torch._dynamo.utils import counters

    eager, compiled = _tiny_model(), _tiny_model()
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    assert compile_denoiser(compiled.denoiser, device="cpu")
    batches = _batches()
    for batch in batches:
        out = []
        for m in (eager, compiled):
            m.train()
            m.zero_grad(set_to_none=True)
            torch.manual_seed(7)
            loss, logs = m.loss(batch)
            loss.backward()
            out.append((loss.detach(), logs["diffusion_loss"], [p.grad for p in m.parameters()]))
        (le, de, ge), (lc, dc, gc) = out
        torch.testing.assert_close(lc, le, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dc, de, rtol=1e-5, atol=1e-6)
        for a, b in zip(gc, ge):
            if b is None:
                assert a is None
            else:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert compiled.denoiser._compiled_call_impl is not None, "compile failed: it fell back to eager"
    # inference (no grad, eval) through the compiled forward equals eager too
    eager.eval(), compiled.eval()
    with torch.no_grad():
        a = eager.generate(texts=["hello", "hi there"], steps=2, seed=0)[0]
        b = compiled.generate(texts=["hello", "hi there"], steps=2, seed=0)[0]
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert compiled.denoiser._compiled_call_impl is not None, "compile failed: it fell back to eager"
    # three training shapes, one inference shape: a handful of graphs, not one per step
    assert counters["stats"]["unique_graphs"] <= 6, dict(counters["stats"])


def _batches():
    from test_models_text_to_mel import make_batch

    from tortoise_lite.text.tokenizers import CharTokenizer

    tok = CharTokenizer()
    return [
        make_batch(tok, ("hello there", "hi"), with_durations=True),
        make_batch(tok, ("a much longer sentence here", "short", "mid length"), with_durations=True),
        make_batch(tok, ("one", "two words", "three", "four more words"), with_durations=True),
    ]


# ----------------------------------------------------------------------- batch-size independence
def test_validation_item_is_the_same_in_any_batch():
    """Validation trims each item to its own frames: the same tensors, the same seeded loss, whatever
    batch (frame budget, padded length, rank) it came in."""
    from tortoise_lite.data.dataset import MelCollate
    from tortoise_lite.training.module import _select

    g = torch.Generator().manual_seed(0)
    lengths = [70, 100, 130, 150, 190]
    items = []
    for k, n in enumerate(lengths):
        L = 10
        d = torch.full((L,), n // L)
        d[: n % L] += 1
        items.append(
            {"id": f"i{k}", "text": "abcdefghij", "mel": torch.randn(N_MELS, n, generator=g) - 4,
             "tokens": torch.arange(1, L + 1), "durations": d, "speaker": None}
        )  # fmt: skip
    collate = MelCollate(pad_to_multiple=32)
    whole = collate(items)  # padded to 192
    halves = [collate(items[:3]), collate(items[3:])]  # padded to 160 and 192
    model = _tiny_model()
    model.eval()
    for i in range(len(items)):
        a = _select(whole, i)
        b = _select(halves[i // 3], i % 3)
        for name in ("mel", "mel_mask", "tokens", "durations"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        losses = []
        for item in (a, b):
            torch.manual_seed(11)
            with torch.no_grad():
                losses.append(model.loss(item)[0])
        assert torch.equal(losses[0], losses[1])
