import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocode import main
from tortoise_lite.vocoders import VocosVocoder, save_checkpoint


def _mels(tmp_path):
    ms = MelSpec()
    t = torch.arange(ms.sample_rate // 4) / ms.sample_rate
    mel = ms(0.5 * torch.sin(2 * torch.pi * 220 * t))
    d = tmp_path / "mels"
    d.mkdir()
    np.save(d / "a.npy", mel.numpy())
    torch.save({"mel": mel, "mel_spec": ms.to_dict()}, d / "b.pt")
    return d, mel


def test_vocode_folder_with_griffin_lim_and_checkpoint(tmp_path, capsys):
    d, mel = _mels(tmp_path)
    assert main([f"input={d}", f"output={tmp_path / 'out'}", "vocoder.n_iter=4"]) == 0
    for name in ("a.wav", "b.wav"):
        audio, sr = sf.read(tmp_path / "out" / name)
        assert sr == 22050 and audio.shape == (mel.shape[-1] * 256,) and np.abs(audio).max() > 0.05
    ckpt = save_checkpoint(
        tmp_path / "v.pt", VocosVocoder(MelSpec(), dim=32, intermediate_dim=64, num_layers=1)
    )
    assert main([f"input={d / 'b.pt'}", f"output={tmp_path / 'one.wav'}", f"ckpt={ckpt}"]) == 0
    assert sf.info(tmp_path / "one.wav").frames == mel.shape[-1] * 256


def test_vocode_user_errors_are_one_line(tmp_path, capsys):
    d, mel = _mels(tmp_path)
    np.save(tmp_path / "nan.npy", np.full((80, 5), np.nan, np.float32))
    torch.save(
        {"mel": torch.zeros(100, 5), "mel_spec": MelSpec.preset("bigvgan_24k_100").to_dict()},
        tmp_path / "big.pt",
    )
    cases = {
        "NaN": [f"input={tmp_path / 'nan.npy'}"],
        "mel settings differ": [f"input={tmp_path / 'big.pt'}"],
        "no such mel file": [f"input={tmp_path / 'missing.npy'}"],
        "no such vocoder checkpoint": [f"input={d}", f"ckpt={tmp_path / 'nope.pt'}"],
        "bad configuration": [f"input={d}", "vocoder=does_not_exist"],
    }
    for needle, args in cases.items():
        capsys.readouterr()
        assert main([*args, f"output={tmp_path / 'o'}"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_vocode_module_entry_exits_nonzero_without_traceback(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((10, 80), np.float32))
    r = subprocess.run(
        [sys.executable, "-m", "tortoise_lite.vocode", f"input={tmp_path / 't.npy'}", f"output={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "transposed" in r.stderr and "Traceback" not in r.stderr
