"""A mask stage without the maps it masks by, before the attribute stage ran, is refused
before any work, naming the methods and the stage that writes them (it failed after loading
the model, naming masked/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxray.config import load_config
from voxray.io.run_state import mark_stage_done
from voxray.io.storage import Storage, StorageError
from voxray.pipeline.context import RunContext
from voxray.pipeline.mask_stage import check_maps_exist


def test_mask_without_attributions_names_the_methods_and_the_attribute_stage(
    tmp_path: Path,
) -> None:
    cfg = load_config(profile="smoke", overrides=[f"out={tmp_path}", f"data_root={tmp_path}"])
    methods = sorted({c.method for c in cfg.mask.conditions})
    assert methods  # the smoke profile masks by some method
    with pytest.raises(StorageError, match="run the attribute stage first") as info:
        check_maps_exist(RunContext(cfg))
    assert all(m in str(info.value) for m in methods)
    mark_stage_done(Storage(str(tmp_path)), "attribute", {})
    check_maps_exist(RunContext(cfg))  # attribute ran: a method it left out has no rows
