"""Bad input to `python -m tortoise_lite.synthesize`: one `error:` line, exit status 2, no traceback."""

from __future__ import annotations

import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.synthesize import main
from tortoise_lite.vocoders import save_checkpoint
from tortoise_lite.vocoders.vocos import VocosVocoder


def _fails(args, capsys) -> str:
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == 2, captured
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_empty_text(tones_ckpt, tmp_path, capsys):
    assert "text is empty" in _fails([f"ckpt={tones_ckpt}", "text=   ", f"out_dir={tmp_path}"], capsys)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert "holds no text" in _fails([f"ckpt={tones_ckpt}", f"texts={blank}"], capsys)
    assert "nothing to say" in _fails([f"ckpt={tones_ckpt}"], capsys)
    assert "no such file" in _fails([f"ckpt={tones_ckpt}", f"texts={tmp_path / 'none.txt'}"], capsys)
    assert not list(tmp_path.glob("*.wav"))


def test_unknown_symbols(tones_ckpt, tmp_path, capsys):
    err = _fails([f"ckpt={tones_ckpt}", "text=C4 H2 ö", f"out_dir={tmp_path}"], capsys)
    assert "unknown symbol(s)" in err and "'H2'" in err and "'ö'" in err


def test_missing_and_wrong_checkpoints(tmp_path, capsys):
    assert "ckpt=... is required" in _fails(["text=C4"], capsys)
    assert "does not exist" in _fails([f"ckpt={tmp_path / 'nope.ckpt'}", "text=C4"], capsys)
    wav = tmp_path / "audio.wav"
    wav.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00")
    assert "audio.wav" in _fails([f"ckpt={wav}", "text=C4"], capsys)
    foreign = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, foreign)
    assert "no 'tortoise_lite' text-to-mel entry" in _fails([f"ckpt={foreign}", "text=C4"], capsys)
    assert "is a directory" in _fails([f"ckpt={tmp_path}", "text=C4"], capsys)


def test_mismatched_vocoder_checkpoint(tones_ckpt, tmp_path, capsys):
    voc = VocosVocoder(MelSpec.preset("bigvgan_24k_100"), dim=16, intermediate_dim=32, num_layers=1)
    path = save_checkpoint(tmp_path / "voc24k.pt", voc)
    err = _fails([f"ckpt={tones_ckpt}", "text=C4", f"vocoder_ckpt={path}", f"out_dir={tmp_path}"], capsys)
    assert "mel settings differ" in err and "sample_rate" in err and "22050" in err and "24000" in err
    assert "voc24k.pt" in err
    err = _fails([f"ckpt={tones_ckpt}", "text=C4", "vocoder=checkpoint", f"vocoder.path={path}"], capsys)
    assert "mel settings differ" in err
    assert "vocoder.path" in _fails([f"ckpt={tones_ckpt}", "text=C4", "vocoder=checkpoint"], capsys)


def test_bad_options(tones_ckpt, capsys):
    assert "sampler/nope" in _fails([f"ckpt={tones_ckpt}", "text=C4", "sampler=nope"], capsys)
    assert "batch_size must be >= 1" in _fails([f"ckpt={tones_ckpt}", "text=C4", "batch_size=0"], capsys)
    assert "steps must be >= 1" in _fails([f"ckpt={tones_ckpt}", "text=C4", "steps=0"], capsys)


def test_unknown_speaker_name(tones_ckpt, tmp_path, capsys):
    """Tones models take their timbre as the speaker, by name or id; anything else is named."""
    err = _fails([f"ckpt={tones_ckpt}", "text=C4 E4", "speaker=nobody", f"out_dir={tmp_path}"], capsys)
    assert "unknown speaker 'nobody'" in err and "known speakers:" in err
    assert not list(tmp_path.glob("*.wav"))
