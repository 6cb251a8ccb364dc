"""`python -m tortoise_lite.evaluate` and the evaluation reports (tiny real checkpoint, held-out prompts)."""

from __future__ import annotations

import json
import math

import matplotlib.image
import numpy as np
import pytest
import torch
from fixtures_ckpt import tiny_checkpoint

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.audio.metrics import mcd_dtw
from tortoise_lite.evaluate import main
from tortoise_lite.evaluation.quality import item_metrics, steps_for_nfe
from tortoise_lite.evaluation.references import (
    EvaluationDataError,
    corpus_source_settings,
    speech_reference,
    tones_reference,
)
from tortoise_lite.evaluation.spectral import band_edges

SMALL = ["n_prompts=2", "compute_quality.samplers=[dpmpp_2m,euler]", "compute_quality.nfe=[1,2]",
         "spectral_bands.steps=4", "spectral_bands.n_t=4", "spectral_bands.noise_draws=1",
         "spectral_bands.n_bands=4", "vocoder.n_iter=8", "vocoder.nnls_iters=8", "threads=1"]  # fmt: skip


def _png_ok(path) -> None:
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300 and float(img[..., :3].std()) > 0.05


def test_evaluate_tones_writes_metrics_and_both_reports(tones_ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main([f"ckpt={tones_ckpt}", f"out_dir={out}", *SMALL]) == 0
    log = capsys.readouterr().out
    assert "tones: 2 held-out prompts" in log

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "tones" and metrics["reference_durations"] is True
    assert set(metrics["metrics"]) == {"pitch_accuracy", "pitch_error_cents", "mel_l1"}
    assert 0.0 <= metrics["metrics"]["pitch_accuracy"] <= 1.0 and metrics["metrics"]["mel_l1"] > 0
    assert len(metrics["per_item"]) == 2 and metrics["rtf"] > 0
    assert len(list((out / "samples").glob("*.wav"))) == 4  # generated + reference per prompt

    cq = json.loads((out / "compute_vs_quality.json").read_text())
    assert set(cq["samplers"]) == {"dpmpp_2m", "euler"}
    for rows in cq["samplers"].values():
        assert [r["nfe"] for r in rows] == [1, 2]
        for r in rows:
            assert set(r["metrics"]) == set(cq["metrics"]) and r["acoustic_seconds"] > 0
    # the reference mel through the same vocoder keeps its pitch: the metric chain measures what it should
    assert cq["vocoded_reference"]["pitch_accuracy"] >= 0.75
    assert cq["vocoded_reference"]["pitch_error_cents"] < 30
    assert cq["vocoded_reference"]["mel_l1"] == 0.0
    _png_ok(out / "compute_vs_quality.png")

    sb = json.loads((out / "spectral_bands.json").read_text())
    traj, loss = sb["trajectory"], sb["loss_by_noise_level"]
    assert len(sb["bands"]) == 4 and traj["nfe"] == 4 and len(traj["t"]) == 4
    assert traj["exact_durations"] and traj["error_vs_reference"] is not None
    final = np.asarray(traj["error_vs_final"])
    assert final.shape == (4, 4) and np.all(final[-1] < 1e-4)  # the last x0 prediction is the sample (t = 0)
    assert np.all(np.asarray(traj["relative_error_vs_final"])[0] == 1.0)
    x0 = np.asarray(loss["x0_mse"])
    assert x0.shape == (4, 4) and loss["t"] == sorted(loss["t"])
    # x0_hat -> x_t as the noise vanishes: the x0 error at the cleanest level is below the noisiest one
    assert np.all(x0[0] < x0[-1])
    assert np.all(np.asarray(loss["loss"]) >= 0)
    _png_ok(out / "spectral_bands.png")


def test_evaluate_refuses_data_without_references(tones_ckpt, tmp_path, capsys):
    with pytest.raises(EvaluationDataError, match="embedded corpus"):
        corpus_source_settings(
            {"data": {"source": {"_target_": "tortoise_lite.data.sources.ManifestSource"}}}
        )
    assert main([f"out_dir={tmp_path}"]) == 2
    assert "ckpt=... is required" in capsys.readouterr().err


def test_band_edges_cover_the_mel_range():
    spec = MelSpec()
    bands = band_edges(spec, 8)
    assert bands[0]["bins"][0] == 0 and bands[-1]["bins"][1] == spec.n_mels
    assert all(a["bins"][1] == b["bins"][0] for a, b in zip(bands, bands[1:]))
    assert bands[0]["fmin_hz"] == pytest.approx(spec.fmin) and bands[-1]["fmax_hz"] == pytest.approx(
        spec.fmax
    )
    lows = [b["fmin_hz"] for b in bands]
    assert lows == sorted(lows)
    with pytest.raises(ValueError, match="n_bands"):
        band_edges(spec, 0)


def test_steps_for_nfe():
    assert steps_for_nfe("dpmpp_2m", 10) == 10 and steps_for_nfe("heun", 9) == 5
    assert steps_for_nfe("flow_midpoint", 10) == 5 and steps_for_nfe("euler", 0) == 1


def test_tones_reference_notes_match_durations():
    from tortoise_lite.text.tokenizers import NoteTokenizer

    spec = MelSpec()
    ref = tones_reference("C4 R A4", spec, NoteTokenizer(), note_seconds=0.3)
    assert sum(ref.durations) == ref.mel.shape[1] == spec.num_frames(len(ref.wav))
    assert [round(n[2], 2) for n in ref.notes] == [261.63, 440.0]  # the rest has no note
    assert ref.notes[1][0] == pytest.approx((ref.durations[0] + ref.durations[1]) * spec.frame_seconds)


def test_speech_reference_and_metrics():
    from tortoise_lite.text.tokenizers import PhonemeTokenizer
    from tortoise_lite.vocoders import GriffinLim

    spec, tok = MelSpec(), PhonemeTokenizer()
    ref = speech_reference("4 0 7", spec, tok)
    other = speech_reference("The red cat.", spec, tok)
    assert ref.durations is not None and len(ref.durations) == len(tok.encode("4 0 7"))
    assert sum(ref.durations) == ref.mel.shape[1]
    voc = GriffinLim(spec, n_iter=8, nnls_iters=8)
    same = item_metrics("synthetic_speech", spec, ref, voc(ref.mel[None])[0])
    assert set(same) == {"wer", "cer", "mcd_dtw_db", "log_f0_rmse_cents", "vuv_error"}
    assert math.isnan(same["wer"])  # no recognizer given: intelligibility is not scored
    assert 0 < same["mcd_dtw_db"] < mcd_dtw(spec, ref.wav, voc(other.mel[None])[0])  # another text is farther
    assert 0.0 <= same["vuv_error"] <= 0.3
    assert math.isfinite(same["log_f0_rmse_cents"]) and same["log_f0_rmse_cents"] < 100
    assert torch.isfinite(ref.mel).all()


@pytest.mark.slow
def test_evaluate_speech_end_to_end(tmp_path_factory, tmp_path):
    ckpt = tiny_checkpoint("speech", tmp_path_factory)
    small = [*SMALL, "n_prompts=1", "compute_quality.samplers=[dpmpp_2m]"]
    assert main([f"ckpt={ckpt}", f"out_dir={tmp_path}", *small]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["kind"] == "synthetic_speech" and metrics["reference_durations"] is False
    assert metrics["metrics"]["mcd_dtw_db"] > 0
