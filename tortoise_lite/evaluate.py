"""Evaluate a checkpoint: ``python -m tortoise_lite.evaluate ckpt=PATH [key=value ...]``.

On the recipe's held-out prompts (never used for training) against reference renderings made like the
training data (:mod:`tortoise_lite.evaluation.references`), writes to ``out_dir``:

* ``metrics.json``: objective metrics with the checkpoint's sampler (tones: pitch accuracy, pitch error,
  mel L1; speech: WER and CER of the offline recognizer, MCD-DTW, log-F0 RMSE, V/UV error), each next to
  its ``ceiling`` (the reference mels through the same vocoder), plus RTF; the wavs in ``samples/``;
* ``compute_vs_quality.json/.png``: every metric against NFE for each sampler;
* ``spectral_bands.json/.png``: per-band error of the x0 predictions along the sampling trajectory, and the
  training loss per band by noise level on the held-out reference mels.

Options: ``conf/evaluate.yaml``. User errors print one ``error:`` line (exit status 2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tortoise_lite.evaluation.cli import (
    build_vocoder_spec,
    compose,
    require,
    run_cli,
    setup_torch,
    write_json,
)

USAGE = """usage: python -m tortoise_lite.evaluate ckpt=PATH [key=value ...]

  ckpt=PATH                          text-to-mel checkpoint trained with +recipe=speech or +recipe=tones
  out_dir=DIR                        reports go here (default outputs/evaluate)
  n_prompts=N                        held-out prompts used (default 8; null = all)
  compute_quality.samplers=[a,b]     samplers compared (default [dpmpp_2m,euler,heun])
  compute_quality.nfe=[4,10,25]      NFE budgets
  compute_quality.enabled=false      skip that report (also spectral_bands.enabled=false)
  vocoder=griffin_lim | vocoder_ckpt=PATH
  --cfg                              print the composed config; all keys: conf/evaluate.yaml"""


def _log(msg: str) -> None:
    print(msg, flush=True)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation ``cfg`` describes; returns ``{"metrics": ..., "files": [...]}``."""
    from tortoise_lite.api import TextToSpeech, build_sampler, load_checkpoint
    from tortoise_lite.evaluation.plots import plot_compute_vs_quality, plot_spectral_bands
    from tortoise_lite.evaluation.quality import compute_vs_quality, evaluate_setting, vocoded_reference
    from tortoise_lite.evaluation.references import (
        SPEECH_KINDS,
        build_references,
        corpus_recognizer,
        heldout_prompts,
    )
    from tortoise_lite.evaluation.spectral import spectral_bands_report

    ckpt = require(cfg, "ckpt", "the text-to-mel checkpoint to evaluate")
    device = setup_torch(cfg)
    model, info = load_checkpoint(str(ckpt), device=device, use_ema=bool(cfg.use_ema))
    tts = TextToSpeech(model, vocoder=build_vocoder_spec(cfg, model.mel_spec), device=device, info=info)
    out = Path(str(cfg.out_dir)).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    kind, prompts, settings = heldout_prompts(info.config, tts.mel_spec)
    if cfg.get("n_prompts") is not None:
        prompts = prompts[: max(1, int(cfg.n_prompts))]
    t0 = time.perf_counter()
    refs = build_references(kind, prompts, tts.mel_spec, tts.tokenizer, settings)
    _log(f"{kind}: {len(refs)} held-out prompts, references rendered in {time.perf_counter() - t0:.1f} s")
    seed, guidance, bs = int(cfg.seed), float(cfg.guidance), int(cfg.batch_size)
    ref_dur = cfg.get("reference_durations")
    files: list[Path] = []

    recognizer = corpus_recognizer(info.config, tts.mel_spec) if kind in SPEECH_KINDS else None
    sampler = build_sampler(cfg.metrics.get("sampler"), getattr(model, "sampler", None))
    wavs: list = []
    main = evaluate_setting(
        tts, refs, kind, sampler, cfg.metrics.get("steps"), seed, guidance, bs, ref_dur, wavs, recognizer
    )
    main.update(
        ceiling=vocoded_reference(tts, refs, kind, recognizer),
        checkpoint=str(info.path),
        global_step=info.global_step,
        kind=kind,
        vocoder=type(tts.vocoder).__name__,
        rtf=(main["acoustic_seconds"] + main["vocoder_seconds"]) / max(main["audio_seconds"], 1e-9),
    )
    shown = ", ".join(f"{k}={v:.4g}" for k, v in main["metrics"].items())
    _log(f"{main['sampler']} ({main['nfe']} NFE): {shown}; RTF {main['rtf']:.3f}")
    _log("ceiling (references through the same vocoder): " + ", ".join(
        f"{k}={v:.4g}" for k, v in main["ceiling"].items()))  # fmt: skip
    files.append(write_json(out / "metrics.json", main))
    if cfg.get("save_wavs", True):
        from tortoise_lite.audio.io import save_wav

        for k, (ref, wav) in enumerate(zip(refs, wavs)):
            save_wav(out / "samples" / f"heldout_{k:03d}.wav", wav, tts.sample_rate)
            save_wav(out / "samples" / f"heldout_{k:03d}_reference.wav", ref.wav, tts.sample_rate)

    if cfg.compute_quality.enabled:
        cq = cfg.compute_quality
        _log(f"compute vs quality: samplers {list(cq.samplers)} at NFE {list(cq.nfe)}")
        report = compute_vs_quality(
            tts,
            refs,
            kind,
            list(cq.samplers),
            [int(n) for n in cq.nfe],
            seed,
            guidance,
            bs,
            ref_dur,
            log=_log,
            recognizer=recognizer,
        )
        files.append(write_json(out / "compute_vs_quality.json", report))
        files.append(plot_compute_vs_quality(out / "compute_vs_quality.png", report))

    if cfg.spectral_bands.enabled:
        sb = cfg.spectral_bands
        report = spectral_bands_report(
            tts, refs, build_sampler(sb.get("sampler"), getattr(model, "sampler", None)),
            None if sb.get("steps") is None else int(sb.steps), seed, int(sb.n_bands), int(sb.n_t),
            int(sb.noise_draws), bs,
        )  # fmt: skip
        settle = ", ".join(f"{t:.2f}" for t in report["trajectory"]["settle_t"])
        _log(f"spectral bands: settle t per band (low -> high) {settle}")
        files.append(write_json(out / "spectral_bands.json", report))
        files.append(plot_spectral_bands(out / "spectral_bands.png", report))
    write_json(
        out / "config.json", OmegaConf.to_container(cfg, resolve=False)
    )  # vocoder.mel_spec: ${mel} is the model's
    _log("wrote " + ", ".join(str(p) for p in files))
    return {"metrics": main, "files": files}


def main(argv: list[str] | None = None) -> int:
    return run_cli("evaluate", lambda args: run(compose("evaluate", args)) and 0, argv, USAGE)


if __name__ == "__main__":
    sys.exit(main())
