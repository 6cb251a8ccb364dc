"""``python -m tortoise_lite.bench mel``: MelSpec vs ``librosa.feature.melspectrogram``, same clips, same settings.

Both compute the HiFi-GAN mel (reflect-padded, center=False, magnitude, Slaney scale and norm, ln clamp) of
16 five-second clips; the librosa path is the usual per-clip numpy loop a data pipeline would run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from tortoise_lite.audio.mel import MelSpec


def _clips(n: int, seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 100 + 150 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * f0 * t + 0.5 * torch.sin(2 * math.pi * 4 * t)
    wav = sum(torch.sin(k * phase) / k for k in range(1, 20)) * 0.2
    return (wav + 0.01 * torch.randn(n, len(t), generator=g)).float()


def _librosa_mel(spec: MelSpec, wav: np.ndarray) -> np.ndarray:
    y = np.pad(wav, spec.pad, mode="reflect")
    m = librosa.feature.melspectrogram(
        y=y,
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        hop_length=spec.hop,
        win_length=spec.win,
        center=False,
        power=spec.power,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=spec.scale == "htk",
        norm=spec.norm,
    )
    return np.log(np.maximum(m, spec.log_floor))


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tortoise_lite.bench mel", description=__doc__)
    ap.add_argument("--preset", default="hifigan_22k_80")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench_out/mel")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    spec = MelSpec.preset(args.preset)
    wav = _clips(args.clips, args.seconds, spec.sample_rate)
    wav_np = wav.numpy()

    ours = spec(wav)  # warm-up, and the filterbank cache
    ref = np.stack([_librosa_mel(spec, w) for w in wav_np])
    away = ref > math.log(spec.log_floor) + 1
    max_diff = float(np.abs(ours.numpy() - ref)[away].max())

    t_ours = _best_of(lambda: spec(wav), args.repeats)
    t_lib = _best_of(lambda: [_librosa_mel(spec, w) for w in wav_np], args.repeats)
    audio_s = args.clips * args.seconds
    result = {
        "preset": args.preset,
        "clips": args.clips,
        "seconds_each": args.seconds,
        "threads": args.threads,
        "tortoise_lite_s": t_ours,
        "librosa_s": t_lib,
        "speedup": t_lib / t_ours,
        "x_realtime_cpu": audio_s / t_ours,
        "max_abs_diff": max_diff,
    }
    print(f"MelSpec {args.preset}: {args.clips} clips x {args.seconds:.0f} s on {args.threads} CPU threads")
    print(f"  tortoise_lite MelSpec : {t_ours * 1e3:8.1f} ms  ({audio_s / t_ours:,.0f}x real time)")
    print(f"  librosa melspectrogram: {t_lib * 1e3:8.1f} ms  ({audio_s / t_lib:,.0f}x real time)")
    print(f"  speedup {t_lib / t_ours:.2f}x   max |diff| away from the floor {max_diff:.2e}")
    if torch.cuda.is_available():
        g = wav.cuda()
        spec(g)
        torch.cuda.synchronize()

        def run_gpu():
            spec(g)
            torch.cuda.synchronize()

        t_gpu = _best_of(run_gpu, args.repeats)
        result["gpu_s"] = t_gpu
        result["gpu_name"] = torch.cuda.get_device_name()
        print(f"  GPU ({result['gpu_name']}): {t_gpu * 1e3:8.2f} ms  ({audio_s / t_gpu:,.0f}x real time)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mel.json").write_text(json.dumps(result, indent=1))
    return 0
