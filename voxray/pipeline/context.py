"""What every stage function receives: the validated config and the two storage roots."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from voxray import schema
from voxray.config import ConfigError, VoxrayConfig
from voxray.io.storage import Storage

#: the output tables' paths under the short names the stages use (defined with the schemas)
MANIFEST = schema.MANIFEST_PATH
TRIALS = schema.TRIALS_PATH
FEATURES = schema.FEATURES_PATH
EMBEDDINGS = schema.EMBEDDINGS_PATH
ATTRIBUTIONS = schema.ATTRIBUTIONS_PATH
MASKED = schema.MASKED_PATH
SCORES = schema.SCORES_PATH
METRICS = schema.METRICS_PATH
CURVES = schema.CURVES_PATH
MODELS = schema.MODELS_PATH
TUNE = schema.TUNE_PATH
#: the tune stage's 003 sweeps (voxray.pipeline.paper_sweeps), each writing tune/<name>.parquet
#: and metrics/tune-<name>.parquet
PAPER_SWEEPS = ("lstm_width", "segment_length")
REPORT = schema.REPORT_PATH


class InvariantError(RuntimeError):
    """A stage's output does not account for its input (rows lost or duplicated)."""


@dataclass
class StageResult:
    """Counts a stage reports; ``inputs == outputs + quarantined`` is checked for it."""

    stage: str
    inputs: int = 0
    outputs: int = 0
    quarantined: int = 0
    skipped: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "StageResult":
        if self.inputs != self.outputs + self.quarantined + self.skipped:
            raise InvariantError(
                f"{self.stage}: {self.inputs} inputs but {self.outputs} outputs + "
                f"{self.quarantined} "
                f"quarantined + {self.skipped} already done"
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "quarantined": self.quarantined,
            "skipped": self.skipped,
            **self.info,
        }


@dataclass
class RunContext:
    cfg: VoxrayConfig
    #: recompute the rows each stage quarantined for a reason that is not the input file's
    #: (``--retry-quarantined``; see voxray.io.sink.QuarantineCause).
    retry_quarantined: bool = False
    #: the stages this command runs (set by ``run_stages``): a stage computes an output that
    #: only a later stage reads (segment embeddings) when that stage is among them.
    stages: tuple[str, ...] = ()

    @property
    def on_cluster(self) -> bool:
        """Ray is a cluster this command joins (``ray.address`` or RAY_ADDRESS, which ``ray
        job submit`` sets), not one it would start for itself."""
        return bool(self.cfg.ray.address or os.environ.get("RAY_ADDRESS"))

    @property
    def out(self) -> Storage:
        if not self.cfg.out:
            raise ConfigError("out: an output folder is required (--out DIR or s3://bucket/prefix)")
        return Storage(self.cfg.out, self.cfg.corpus.s3)

    @property
    def data(self) -> Storage:
        if not self.cfg.data_root:
            raise ConfigError(
                "data_root: a corpus root is required (--data-root DIR or s3://bucket/prefix)"
            )
        return Storage(self.cfg.data_root, self.cfg.corpus.s3)
