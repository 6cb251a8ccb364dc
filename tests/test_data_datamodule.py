import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.batch import Batch
from tortoise_lite.data.sources import CorpusSource
from tortoise_lite.paths import config_dir
from tortoise_lite.text.tokenizers import NoteTokenizer
from tortoise_lite.training.datamodule import MelDataModule


def make_dm(tmp_path, **kw):
    src = CorpusSource("tones", cache_dir=str(tmp_path), progress=False, n_sequences=12, n_heldout=2)
    return MelDataModule(
        src, MelSpec(), NoteTokenizer(), batch_size=4, val_fraction=0.2, progress=False, **kw
    )


def test_batches_have_padding_masks_and_durations(tmp_path):
    dm = make_dm(tmp_path, pad_to_multiple=4)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 12 and len(dm.val_set) == 2
    assert dm.n_speakers >= 1 and len(dm.heldout_prompts()) == 2
    batches = list(dm.train_dataloader())
    assert sum(len(b) for b in batches) == 10
    b = batches[0]
    assert isinstance(b, Batch)
    B, n_mels, T = b.mel.shape
    assert n_mels == 80 and T % 4 == 0 and T >= int(b.mel_lengths.max())
    assert torch.equal(b.mel_mask.sum(1), b.mel_lengths) and torch.equal(b.token_mask.sum(1), b.token_lengths)
    assert torch.equal(b.durations.sum(1), b.mel_lengths)  # durations cover every real frame
    assert (b.tokens[~b.token_mask] == 0).all()
    pad = torch.log(torch.tensor(MelSpec().log_floor))
    assert torch.allclose(b.mel.transpose(1, 2)[~b.mel_mask], pad)
    assert b.speaker is not None and b.speaker.dtype == torch.long
    assert len(b.texts) == len(b.ids) == B
    assert b.to("cpu").mel.data_ptr() != 0


def test_state_dict_restores_data_order(tmp_path):
    dm = make_dm(tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    full = [b.ids for b in dm.train_dataloader()]
    dm2 = make_dm(tmp_path)
    dm2.setup("fit")  # loads the prepared view written above
    dm2.load_state_dict({"seed": 0, "epoch": 0, "batches_seen": 1})
    assert [b.ids for b in dm2.train_dataloader()] == full[1:]


def test_hydra_configs_build_the_datamodule(tmp_path):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "prepare",
            overrides=[
                "data=tones",
                "text=notes",
                f"data.source.cache_dir={tmp_path}",
                "data.source.n_sequences=6",
            ],
        )
        dm = instantiate(cfg.data)
        assert isinstance(dm, MelDataModule) and isinstance(dm.tokenizer, NoteTokenizer)
        assert dm.mel == MelSpec.preset("hifigan_22k_80") and dm.limits.max_seconds == 20.0
        for name in ["synthetic_speech", "ljspeech", "folder"]:
            c = compose("prepare", overrides=[f"data={name}"])
            assert c.data._target_.endswith("MelDataModule")
        for name in ["chars", "phonemes", "notes"]:
            c = compose("prepare", overrides=[f"text={name}"])
            tok = instantiate(c.text.tokenizer)
            assert len(tok) > 10
