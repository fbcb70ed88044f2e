"""Configuration: every YAML in conf/ loads, base.yaml is the code's defaults, bad keys fail by
name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from voxray.config import (
    ConfigError,
    MaskCondition,
    MaskConfig,
    VoxrayConfig,
    asked_keys,
    conf_dir,
    from_dict,
    load_config,
    read_yaml,
    replace,
    to_dict,
)
from voxray.config.conditions import SEEN_CLASSIFICATION

CONF = Path(__file__).resolve().parents[3] / "conf"


def test_base_yaml_equals_code_defaults() -> None:
    assert from_dict(VoxrayConfig, read_yaml(CONF / "base.yaml")) == VoxrayConfig()


@pytest.mark.parametrize(
    "path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF))
)
def test_every_conf_file_loads(path: Path) -> None:
    cfg = load_config(files=[path])
    assert isinstance(cfg, VoxrayConfig)


#: per profile, the resolved values its header promises (dotted key -> value); keys a profile
#: leaves alone resolve to base.yaml's defaults (the last entries of each).
PROFILE_VALUES: dict[str, dict[str, object]] = {
    "smoke": {
        "model.arch": "ecapa_tdnn",
        "model.channels": 32,
        "model.embedding_dim": 32,
        "train.epochs": 2,
        "ray.progress_bars": False,
        "attribution.ig_steps": 8,
        "attribution.baseline": "ones",  # base
    },
    "demo": {
        "model.arch": "ecapa_tdnn",
        "model.channels": 128,
        "model.mfa_channels": 384,  # 3C, not the paper's 1536
        "model.feature_kind": "fbank",  # base
        "train.epochs": 12,
        "train.crops_per_utt": 3,
        "train.lr": 0.004,
        "train.scheduler": "warmup_decay",
        "train.augment.enabled": True,
        "attribution.ig_steps": 16,
        "attribution.max_utterances": 16,
        "retrain.epochs": 0,  # the base model's recipe (its 12 epochs)
        "retrain.seeds": 1,
        "ray.num_cpus": 2,
        "attribution.pathways": ("traversal", "classification"),  # base
    },
    "vox1": {
        "model.channels": 512,
        "model.embedding_dim": 192,
        "train.epochs": 40,
        "train.batch_size": 128,
        "train.num_workers": 8,
        "attribution.max_utterances": 2000,
        "attribution.ig_steps": 50,
        "attribution.resources.num_gpus": 0.5,
        "eval.asnorm": True,
        "features.kinds": ("fbank", "mfcc"),
        "corpus.trial_lists": ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt"),
    },
    "vox2": {
        "model.channels": 1024,
        "train.num_workers": 64,
        "train.batch_size": 256,
        "features.kinds": ("fbank",),
        "attribution.max_utterances": 5000,
        "eval.multispeaker.trials_per_case": 500,
    },
    "real": {
        "model_path": "resemblyzer",
        "model.arch": "ge2e",
        "attribution.pathways": ("traversal",),
        "attribution.baseline": "zeros",  # silence for a linear-power front-end
        "corpus.resample": True,
    },
    "real-campplus": {
        "model_path": "campplus",
        "model.arch": "campplus",
        "attribution.pathways": ("traversal",),
        "eval.enrolment.enabled": True,  # a target speaker for the CAMs and the mixtures
        "eval.multispeaker.layers": ("fcm", "block1", "block2", "block3"),
        "corpus.resample": True,
    },
    "paper000": {
        "model.arch": "ecapa_tdnn",
        "model.channels": 512,
        "model.embedding_dim": 192,
        "model.feature_kind": "mfcc",
        "model.head.kind": "aam",
        "model.head.margin": 0.2,
        "model.head.scale": 30.0,
        "features.kinds": ("mfcc",),
        "attribution.methods": (
            "integrated_gradients",
            "gradient_shap",
            "shapley_sampling",
            "deeplift",
            "saliency",
        ),
        "attribution.pathways": ("traversal", "classification"),
        "attribution.baseline": "ones",
    },
}


def resolved(cfg: object, key: str) -> object:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("profile", sorted(PROFILE_VALUES))
def test_profile_resolves_to_what_its_header_says(profile: str) -> None:
    cfg = load_config(profile=profile)
    assert cfg.profile == profile
    got = {key: resolved(cfg, key) for key in PROFILE_VALUES[profile]}
    assert got == PROFILE_VALUES[profile]


def test_paper000_retrains_on_table_2s_masks() -> None:
    """000's Table 2 on Traversal maps: IG and GradientShap attribution x input, IG + mask(0.1)
    under both readings, each followed by its shuffled-map control, then the seen-classification
    variant and its control; from scratch and continued from the base model."""
    cfg = load_config(profile="paper000")
    own = [
        "integrated_gradients/traversal/product",
        "integrated_gradients/traversal/threshold:signed@0.1",
        "integrated_gradients/traversal/threshold:magnitude@0.1",
        "gradient_shap/traversal/product",
        "integrated_gradients/seen-classification/product",
    ]
    assert [c.name for c in cfg.mask.conditions] == [
        n for name in own for n in (name, f"{name}/shuffled")
    ]
    assert (cfg.retrain.epochs, cfg.retrain.variants) == (0, ("scratch", "continue"))


def test_default_table_2_masks_no_utterance_with_a_classification_map() -> None:
    """The default design: every utterance, training and test, masked along Traversal, and
    every condition with its shuffled-map control; the Classification variant is opt-in."""
    cfg = VoxrayConfig()
    assert cfg.mask.conditions and all(c.pathway == "traversal" for c in cfg.mask.conditions)
    assert not any(c.parts.pathway == SEEN_CLASSIFICATION for c in cfg.mask.conditions)
    own = [c for c in cfg.mask.conditions if c.maps == "own"]
    shuffled = {c.name for c in cfg.mask.conditions if c.maps == "shuffled"}
    assert shuffled == {f"{c.name}/shuffled" for c in own}
    # the controls are not doubled when listed too, and can be switched off
    listed = MaskConfig(conditions=(own[0], replace(own[0], maps="shuffled")))
    assert len(listed.conditions) == 2
    assert MaskConfig(conditions=(own[0],), controls=False).conditions == (own[0],)
    assert cfg.retrain.epochs == 0 and cfg.retrain.variants == ("scratch",)


#: Sarvaš 2021 (002) §4.2-4.3: AlexNet at lr 1e-4, the top 0.5% relevant bins of each training
#: crop set to their Moore-neighbourhood mean, the trained model trained again on those alone.
SEED_002_GENDER = {"lr": 1e-4, "retrain_on": "augmented", "top_fraction": 0.005}


def _gender_protocol(cfg: VoxrayConfig) -> dict[str, object]:
    return {key: getattr(cfg.eval.gender, key) for key in SEED_002_GENDER}


def test_default_gender_protocol_is_002s() -> None:
    assert _gender_protocol(VoxrayConfig()) == SEED_002_GENDER


@pytest.mark.parametrize("profile", sorted(p.stem for p in (CONF / "profiles").glob("*.yaml")))
def test_every_profile_that_runs_the_gender_experiment_runs_002s_protocol(profile: str) -> None:
    """No profile overrides 002's protocol (it may shorten the epochs, or leave it out)."""
    cfg = load_config(profile=profile)
    assert not cfg.eval.gender.enabled or _gender_protocol(cfg) == SEED_002_GENDER


@pytest.mark.parametrize(
    ("override", "key"),
    [("retrain.seeds=0", "retrain.seeds"), ("retrain.variants=[]", "retrain.variants")],
)
def test_bad_retrain_settings_name_the_key(override: str, key: str) -> None:
    with pytest.raises(Exception, match=key):
        load_config(overrides=[override])


def test_every_profile_is_checked() -> None:
    profiles = {p.stem for p in (CONF / "profiles").glob("*.yaml")}
    # the other paper profiles are held to their papers by test_paper_profiles.py
    assert profiles - set(PROFILE_VALUES) == {"paper001", "paper002", "paper003"}


def test_overlays_apply_in_order(tmp_path: Path) -> None:
    """base.yaml < profile < each --config file in the order given < key=value overrides, and
    a later layer changes only the keys it names."""
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("train: {epochs: 5, lr: 0.01}\nattribution: {ig_steps: 7}\n")
    second.write_text("train: {epochs: 6}\n")
    cfg = load_config(files=[first, second], overrides=["attribution.ig_steps=9"], profile="demo")
    assert cfg.train.epochs == 6  # second file over first over demo's 12
    assert cfg.train.lr == 0.01  # first file over demo's 0.004, second names no lr
    assert cfg.attribution.ig_steps == 9  # override over file over demo's 16
    assert cfg.train.crops_per_utt == 3  # demo's, no later layer names it
    assert cfg.train.weight_decay == VoxrayConfig().train.weight_decay  # base
    swapped = load_config(files=[second, first], profile="demo")
    assert swapped.train.epochs == 5
    assert load_config(overrides=["train.epochs=2", "train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("eval: {gender: {epochz: 3}}", "unknown config key eval.gender.epochz"),
        ("eval: {gender: {epochs: many}}", "eval.gender.epochs: expected an integer"),
        ("model: {head: {scale: big}}", "model.head.scale"),
        ("mask: {conditions: [{method: ig, threshold: high}]}", r"mask.conditions\[0\].threshold"),
        ("attribution: {methods: saliency}", "attribution.methods: expected a list"),
    ],
)
def test_a_bad_key_or_type_in_a_file_fails_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    f = tmp_path / "overlay.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(files=[f], profile="demo")


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
    assert cfg.mask.conditions == (
        MaskCondition("saliency", "traversal", "threshold", 0.3),
        MaskCondition("saliency", "traversal", "threshold", 0.3, maps="shuffled"),
    )
    assert cfg.mask.conditions[0].name == "saliency/traversal/threshold:signed@0.3"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=3", "unknown config key train.epochz"),
        ("tran.epochs=3", "unknown config key tran"),
        ("train.epochs=three", "train.epochs: expected an integer"),
        ("train.epochs=true", "train.epochs: expected an integer"),
        ("model.arch=vgg", "model.arch: 'vgg' is not one of"),
        ("attribution.audio=loud", "attribution.audio: 'loud' is not one of"),
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
        ("embed.resources.threads=-1", "embed.resources: threads must be >= 0"),
        ("embed.from_audio=maybe", "embed.from_audio"),
        ("train.patience=-1", "train: patience must be >= 0"),
        ("tune.max_failures=-1", "tune: max_failures must be >= 0"),
        ("ray.no_progress_timeout_s=0", "ray: no_progress_timeout_s must be > 0 or -1"),
        ("train.val_fraction=0.6", "train: val_fraction must lie in"),
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


def test_asked_keys_are_what_a_profile_file_or_override_sets(tmp_path: Path) -> None:
    """base.yaml's (and pretrained.yaml's) keys are defaults, not asked for: a method they hold
    that the model cannot explain is left out, where one the user set is refused."""
    assert asked_keys() == frozenset()
    f = tmp_path / "mine.yaml"
    f.write_text("trial:\n  methods: [saliency]\n  sides: [a]\n")
    asked = asked_keys(
        files=[f], overrides=["attribution.pathways=[traversal]"], profile="real-campplus"
    )
    assert {"trial.methods", "trial.sides", "attribution.pathways", "attribution.methods"} <= asked
    assert (
        "attribution" not in asked and {"attribution.ig_steps", "eval.enrolment.enabled"} <= asked
    )
    assert "attribution.methods" not in asked_keys(overrides=["attribution.ig_steps=4"])
