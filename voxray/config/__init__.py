"""Typed, validated configuration: frozen dataclasses are the schema, YAML is only data.

``load_config`` deep-merges the YAML files it is given (``conf/base.yaml`` first when it
exists, then a profile, then ``--config`` files) and ``key=value`` overrides, then builds
the dataclasses of the section modules. An unknown key or a value of the wrong type raises
``ConfigError`` naming the dotted key, before any work starts (wespeaker's silently ignored
typo is the bug this avoids).

The modules: the sections by concern (``resources``, ``data``, ``models``, ``attribution``,
``evaluation``, ``run``: the whole ``VoxrayConfig``), ``loading`` (files, profiles,
overrides), ``validation`` (the generic validator) and ``conditions`` (the name of a masked-data
condition). The names below are the package's public API.
"""

from voxray.config.attribution import (
    AttributionConfig,
    MaskCondition,
    MaskConfig,
    TrialConfig,
    TrialMethod,
)
from voxray.config.data import CorpusConfig, FeatureConfig, KaldiParams
from voxray.config.evaluation import (
    LINKAGES,
    EvalConfig,
    FaithfulnessConfig,
    GenderConfig,
    MultiSpeakerConfig,
    ReportConfig,
    SanityConfig,
    XaiMetric,
    XaiMetricsConfig,
)
from voxray.config.loading import (
    asked_keys,
    conf_dir,
    deep_merge,
    dump_yaml,
    from_dict,
    load_config,
    parse_override,
    profile_path,
    read_yaml,
    replace,
    to_dict,
)
from voxray.config.models import (
    AugmentConfig,
    EmbedConfig,
    HeadConfig,
    ModelConfig,
    RetrainConfig,
    SegmentSweepConfig,
    TrainConfig,
    TuneConfig,
    WidthSweepConfig,
)
from voxray.config.resources import ResourceConfig, S3Config
from voxray.config.run import RayConfig, VoxrayConfig
from voxray.config.validation import ConfigError, build

__all__ = [
    "LINKAGES",
    "AttributionConfig",
    "AugmentConfig",
    "ConfigError",
    "CorpusConfig",
    "EmbedConfig",
    "EvalConfig",
    "FaithfulnessConfig",
    "FeatureConfig",
    "GenderConfig",
    "HeadConfig",
    "KaldiParams",
    "MaskCondition",
    "MaskConfig",
    "ModelConfig",
    "MultiSpeakerConfig",
    "RayConfig",
    "ReportConfig",
    "ResourceConfig",
    "RetrainConfig",
    "S3Config",
    "SanityConfig",
    "TrainConfig",
    "TrialConfig",
    "TrialMethod",
    "SegmentSweepConfig",
    "TuneConfig",
    "WidthSweepConfig",
    "VoxrayConfig",
    "XaiMetric",
    "XaiMetricsConfig",
    "asked_keys",
    "build",
    "conf_dir",
    "deep_merge",
    "dump_yaml",
    "from_dict",
    "load_config",
    "parse_override",
    "profile_path",
    "read_yaml",
    "replace",
    "to_dict",
]
