"""Configuration: every YAML in conf/ loads, base.yaml is the code's defaults, bad keys fail by
name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from voxray.config import (
    ConfigError,
    MaskCondition,
    VoxrayConfig,
    conf_dir,
    from_dict,
    load_config,
    read_yaml,
    replace,
    to_dict,
)

CONF = Path(__file__).resolve().parents[3] / "conf"


def test_base_yaml_equals_code_defaults() -> None:
    assert from_dict(VoxrayConfig, read_yaml(CONF / "base.yaml")) == VoxrayConfig()


@pytest.mark.parametrize(
    "path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF))
)
def test_every_conf_file_loads(path: Path) -> None:
    cfg = load_config(files=[path])
    assert isinstance(cfg, VoxrayConfig)


@pytest.mark.parametrize("profile", ["smoke", "demo", "vox1", "vox2"])
def test_profiles(profile: str) -> None:
    cfg = load_config(profile=profile)
    assert cfg.profile == profile


def test_overrides_apply_with_types() -> None:
    cfg = load_config(
        overrides=[
            "train.epochs=3",
            "features.kinds=[fbank, mfcc]",
            "train.lr=1e-4",
            "features.resources.num_gpus=0.5",
            "train.use_gpu=false",
        ]
    )
    assert cfg.train.epochs == 3 and cfg.features.kinds == ("fbank", "mfcc")
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.features.resources.num_gpus == 0.5
    assert cfg.train.use_gpu is False


def test_mask_conditions_from_yaml() -> None:
    cfg = load_config(
        overrides=["mask.conditions=[{method: saliency, rule: threshold, threshold: 0.3}]"]
    )
    assert cfg.mask.conditions == (MaskCondition("saliency", "classification", "threshold", 0.3),)
    assert cfg.mask.conditions[0].name == "saliency/seen-classification/threshold:signed@0.3"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=3", "unknown config key train.epochz"),
        ("tran.epochs=3", "unknown config key tran"),
        ("train.epochs=three", "train.epochs: expected an integer"),
        ("train.epochs=true", "train.epochs: expected an integer"),
        ("model.arch=vgg", "model.arch: 'vgg' is not one of"),
        ("features.kinds=fbank", "features.kinds: expected a list"),
        (
            "features.resources.num_gpus=lots",
            "features.resources.num_gpus: 'lots' does not match float or 'auto'",
        ),
        ("mask.conditions=[{method: ig, rule: erase}]", "mask.conditions[0].rule"),
        (
            "attribution.resources.rows_per_file=-1",
            "attribution.resources: rows_per_file must be >= 0",
        ),
        ("embed.resources.batch_size=0", "embed.resources: batch_size must be >= 1"),
        ("train", "is not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(overrides=[override])


def test_bad_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(files=[f])
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(files=[f])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(files=[tmp_path / "missing.yaml"])


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*smoke"):
        load_config(profile="nope")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("train: !!python/object/apply:os.system ['touch %s']\n" % (tmp_path / "pwned"))
    with pytest.raises(ConfigError):
        load_config(files=[f])
    assert not (tmp_path / "pwned").exists()


def test_replace_and_round_trip() -> None:
    cfg = replace(VoxrayConfig(), **{"train.epochs": 7, "out": "x"})
    assert cfg.train.epochs == 7 and cfg.out == "x"
    assert from_dict(VoxrayConfig, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_conf_dir_points_at_repo() -> None:
    assert (conf_dir() / "base.yaml").is_file()
