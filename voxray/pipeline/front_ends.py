"""Which front-ends a run needs, and where each one's features live.

The front-end belongs to the model (``voxray.features.base``): the base model's is read from
the model itself (``--model``, or the folder the train stage wrote); before training, it is
the Kaldi front-end the train stage will use (``model.feature_kind`` as ``features``
configures it). ``features.kinds`` adds Kaldi front-ends computed beside it.

Each partition ``features/kind=<name>/`` records the spec it was computed with in
``features/_front_ends/<name>.yaml`` (Hive readers skip ``_`` folders), so a model whose
front-end has the same name but other parameters is refused instead of fed wrong features.
"""

from __future__ import annotations

import yaml

from voxray.config import ConfigError, VoxrayConfig
from voxray.features import FrontEndSpec, kaldi_front_end
from voxray.io.storage import Storage
from voxray.log import get_logger
from voxray.models.checkpoint import CONFIG_FILE, load_model
from voxray.pipeline.context import FEATURES, MODELS, RunContext
from voxray.pipeline.datasets import features_rel
from voxray.pipeline.model_ref import ModelRef, base_model

log = get_logger(__name__)


def trained_front_end(cfg: VoxrayConfig) -> FrontEndSpec:
    """The front-end a model trained by this run's configuration uses."""
    return kaldi_front_end(cfg.model.feature_kind, cfg.features)


def model_front_end(ctx: RunContext, model: ModelRef) -> FrontEndSpec:
    """The front-end ``model`` was trained on."""
    return load_model(model.path, ctx.cfg.corpus.s3).front_end


def base_front_end(ctx: RunContext) -> FrontEndSpec:
    """The base model's front-end; before the train stage has written the model, the one it
    will train on."""
    if not ctx.cfg.model_path and not ctx.out.exists(
        f"{MODELS}/{ctx.cfg.train.name}/{CONFIG_FILE}"
    ):
        return trained_front_end(ctx.cfg)
    return model_front_end(ctx, base_model(ctx))


def run_front_ends(ctx: RunContext) -> list[FrontEndSpec]:
    """Every front-end the features stage computes: the base model's first, then the Kaldi
    kinds of ``features.kinds`` (a kind the model's front-end already names is the model's).

    Raises:
        ConfigError: ``features.kinds`` names a kind twice.
    """
    specs = [base_front_end(ctx)]
    for kind in ctx.cfg.features.kinds:
        if kind == specs[0].name:
            if kaldi_front_end(kind, ctx.cfg.features) != specs[0]:
                log.info("features: kind %s is computed with the model's own parameters", kind)
            continue
        specs.append(kaldi_front_end(kind, ctx.cfg.features))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"features.kinds: front-end names repeat: {names}")
    return specs


def _record_rel(name: str) -> str:
    return f"{FEATURES}/_front_ends/{name}.yaml"


def recorded_front_ends(out: Storage) -> list[str]:
    """Names of the front-ends whose features ``out`` holds (complete or not), sorted."""
    return sorted(
        rel.rsplit("/", 1)[-1][: -len(".yaml")]
        for rel in out.find(f"{FEATURES}/_front_ends", (".yaml",))
    )


def record_front_end(out: Storage, spec: FrontEndSpec) -> None:
    """Note that ``features/kind=<spec.name>/`` holds ``spec``'s features (before writing any);
    refuse if it already holds another parameter set's."""
    if out.exists(_record_rel(spec.name)):
        check_front_end(out, spec)
        return
    out.write_text(_record_rel(spec.name), yaml.safe_dump(spec.to_dict(), sort_keys=False))


def check_front_end(out: Storage, spec: FrontEndSpec) -> None:
    """Raise ValueError unless ``features/kind=<spec.name>/`` was computed with ``spec``."""
    rel = _record_rel(spec.name)
    if not out.exists(rel):
        raise ValueError(
            f"{out.uri(rel)}: no record of the {spec.name!r} front-end: run the features stage"
        )
    recorded = FrontEndSpec.from_dict(yaml.safe_load(out.read_text(rel)), out.uri(rel))
    if recorded != spec:
        raise ValueError(
            f"{out.uri(features_rel(spec.name))} holds {spec.name!r} features computed with "
            f"{recorded.to_dict()['params']}, but the model needs {spec.to_dict()['params']}: "
            "use another --out, or remove that partition and rerun features"
        )
