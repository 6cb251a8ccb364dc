"""`python -m tortoise_lite.synthesize`: wavs, mel PNGs, sampler/steps/vocoder from the command line, RTF line."""

from __future__ import annotations

import re
import subprocess
import sys

import soundfile as sf

from tortoise_lite.synthesize import main


def test_one_text_to_wav_and_png(tones_ckpt, tmp_path, capsys):
    rc = main([f"ckpt={tones_ckpt}", "text=C4 E4 G4", f"out_dir={tmp_path}", "mel_png=true", "steps=3"])
    out = capsys.readouterr().out
    assert rc == 0
    wav, sr = sf.read(tmp_path / "utt_000.wav")
    assert sr == 22050 and wav.ndim == 1 and len(wav) > 0 and abs(wav).max() > 0
    assert (tmp_path / "utt_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = re.search(r"RTF (\d+\.\d+) \(acoustic (\d+\.\d+), vocoder (\d+\.\d+)\)", out)
    assert m, out
    assert abs(float(m[1]) - float(m[2]) - float(m[3])) < 2e-3
    assert "dpmpp_2m, 3 NFE, vocoder GriffinLim" in out


def test_texts_file_sampler_and_vocoder_on_the_command_line(tones_ckpt, tmp_path, capsys):
    texts = tmp_path / "prompts.txt"
    texts.write_text("C4 D4\n\nE4 F4 G4\n", encoding="utf-8")
    args = [f"ckpt={tones_ckpt}", f"texts={texts}", f"out_dir={tmp_path / 'o'}", "sampler=heun", "steps=3",
            "vocoder=griffin_lim", "vocoder.n_iter=2", "seed=3", "prefix=tone"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["tone_000.wav", "tone_001.wav"]
    assert "heun, 5 NFE" in out  # heun: 2 evaluations per interval except the last (2N - 1)
    first = sf.read(tmp_path / "o" / "tone_000.wav")[0]
    assert main([*args[:2], f"out_dir={tmp_path / 'again'}", *args[3:]]) == 0  # same seed, same audio
    assert (sf.read(tmp_path / "again" / "tone_000.wav")[0] == first).all()


def test_help_and_cfg(capsys):
    assert main(["--help"]) == 0
    assert "ckpt=PATH" in capsys.readouterr().out
    assert main(["--cfg", "ckpt=x.ckpt", "sampler=euler"]) == 0
    out = capsys.readouterr().out
    assert "ckpt: x.ckpt" in out and "name: euler" in out


def test_module_runs_as_a_program(tones_ckpt, tmp_path):
    from _train_utils import subprocess_env

    proc = subprocess.run(
        [sys.executable, "-m", "tortoise_lite.synthesize", f"ckpt={tones_ckpt}", "text=A4, B4", "steps=2",
         f"out_dir={tmp_path}", "threads=1"],
        capture_output=True, text=True, env=subprocess_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2  # "A4," is not a note: the comma reaches the tokenizer verbatim
    assert proc.stderr.startswith("error: notes tokenizer: unknown symbol(s) 'A4,'")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
