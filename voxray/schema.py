"""Parquet tables of the output contract (design.md, "Output layout"): names and schemas.

Every writer builds its tables against these schemas, so the columns an analyst queries
with DuckDB are defined in one place. Partition columns (``kind`` of features/, ``method``
of attributions/ and masked/) live in the Hive path (``method=ig/``), not inside the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: where each output table lives under --out (design.md, "Output layout"): a file or a
#: directory of Parquet files. Readers of the outputs (the report, DuckDB users) need these
#: and the schemas below, nothing of the pipeline that writes them.
MANIFEST_PATH = "manifest.parquet"
TRIALS_PATH = "trials.parquet"
QUARANTINE_PATH = "quarantine.parquet"
FEATURES_PATH = "features"
EMBEDDINGS_PATH = "embeddings"
ATTRIBUTIONS_PATH = "attributions"
MASKED_PATH = "masked"
SCORES_PATH = "scores"
METRICS_PATH = "metrics"
CURVES_PATH = "curves"
MODELS_PATH = "models"
TUNE_PATH = "tune"
REPORT_PATH = "report"
#: explanations as audio (voxray.mask.audio), FLAC files: ``audio/<model>/<utt_id>/original.flac``
#: and ``audio/<model>/<utt_id>/<method>.<pathway>.<part>.flac`` for each part of AUDIO_PARTS.
AUDIO_PATH = "audio"
AUDIO_ORIGINAL = "original"
#: the speech a map keeps and the speech it removes; kept + removed is the original.
AUDIO_PARTS = ("kept", "removed")
AUDIO_SUFFIX = ".flac"


def audio_file(model: str, utt_id: str, method: str = "", pathway: str = "", part: str = "") -> str:
    """The output path of an utterance's original audio (no method), or of one ``part`` of the
    audio a (method, pathway) map splits it into."""
    name = f"{method}.{pathway}.{part}" if method else AUDIO_ORIGINAL
    return f"{AUDIO_PATH}/{model}/{utt_id}/{name}{AUDIO_SUFFIX}"


def parse_audio_file(rel: str) -> tuple[str, str, str, str, str] | None:
    """``(model, utt_id, method, pathway, part)`` of an ``audio_file`` path (method and pathway
    empty, part ``original``, for the original); None for any other path."""
    parts = rel.split("/")
    if len(parts) < 4 or parts[0] != AUDIO_PATH or not rel.endswith(AUDIO_SUFFIX):
        return None
    model, utt_id = parts[1], "/".join(parts[2:-1])
    name = parts[-1][: -len(AUDIO_SUFFIX)].split(".")
    if name == [AUDIO_ORIGINAL]:
        return model, utt_id, "", "", AUDIO_ORIGINAL
    if len(name) == 3 and all(name) and name[2] in AUDIO_PARTS:
        return model, utt_id, name[0], name[1], name[2]
    return None


FLOATS = pa.list_(pa.float32())
#: field metadata of a column only some rows of a table fill (trial keys, XAI metric names):
#: writers that do not know it leave it out and ``table`` / ``conform`` write nulls.
OPTIONAL = {b"voxray": b"optional"}


def optional(name: str, type_: pa.DataType) -> pa.Field:
    """A nullable column that writers may omit (see ``OPTIONAL``)."""
    return pa.field(name, type_, nullable=True, metadata=OPTIONAL)


def required(schema: pa.Schema) -> tuple[str, ...]:
    """The columns every writer of ``schema`` must give (all but the optional ones)."""
    return tuple(f.name for f in schema if f.metadata != OPTIONAL)


#: the type of every column of the output tables: a name means the same thing, and has the same
#: type, in each table it stands in (``utt_id``, ``model``, ``num_frames`` ...).
COLUMN_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(
        "utt_id speaker_id video_id path split gender list utt_a utt_b stage reason cause model"
        " condition pathway params side kind scorer metric family method case experiment variant"
        " trial_id config status joint_baseline baseline_utt_a baseline_utt_b error".split(),
        pa.string(),
    ),
    **dict.fromkeys("label iden_split".split(), pa.int8()),
    **dict.fromkeys(
        "sample_rate num_frames num_bins segment start_frame target".split(), pa.int32()
    ),
    **dict.fromkeys("num_samples n".split(), pa.int64()),
    **dict.fromkeys(
        "duration_s completeness_error score baseline_score threshold value"
        " ci_low ci_high x y".split(),
        pa.float64(),
    ),
    **dict.fromkeys("values freq_profile embedding".split(), FLOATS),
}


def table_schema(columns: str, optional_groups: tuple[str, ...] = ()) -> pa.Schema:
    """A table schema of the space-separated ``columns`` (types from ``COLUMN_TYPES``), followed
    by the optional columns of each group in ``optional_groups``."""
    names = [(n, False) for n in columns.split()]
    names += [(n, True) for group in optional_groups for n in group.split()]
    return pa.schema(
        [optional(n, COLUMN_TYPES[n]) if opt else (n, COLUMN_TYPES[n]) for n, opt in names]
    )


MANIFEST = table_schema(
    "utt_id speaker_id video_id path num_samples sample_rate duration_s split gender iden_split"
)
TRIALS = table_schema("list label utt_a utt_b")
#: ``cause`` (voxray.io.sink.QuarantineCause): ``input`` (a property of the input file),
#: ``compute`` or ``resources``; the last two are recomputed by ``--retry-quarantined``.
QUARANTINE = table_schema("path stage reason cause")
FEATURES = table_schema("utt_id num_frames num_bins values")
FEATURES_PARTITION = "kind"
EMBEDDINGS = table_schema("utt_id segment start_frame num_frames model condition embedding")
ATTRIBUTIONS = table_schema(
    "utt_id model pathway params target num_frames num_bins values freq_profile completeness_error",
    (
        # trial pathway only: the trial (list, utt_a, utt_b) and the side explained ("a": utt_a's
        # features with utt_b's embedding fixed, "b" the reverse); utt_id is that side's utterance
        "list utt_a utt_b side",
        # trial pathway only: the score the map explains, s(x), and the baseline's s(x') with
        # the other side fixed (null for a method without a baseline)
        "score baseline_score",
        # joint decompositions only (side ``joint_a``/``joint_b``, both sides on one path from
        # a baseline pair): the baseline's name (``trial.joint_baseline``) and the pair's
        # utterances; score is s(x_a, x_b), baseline_score s(x'_a, x'_b), and
        # completeness_error, the same on both rows, compares the two maps' summed values
        # with their difference
        "joint_baseline baseline_utt_a baseline_utt_b",
    ),
)
ATTRIBUTIONS_PARTITION = "method"
#: the ``side`` of a joint decomposition's two rows: utt_a's map and utt_b's.
JOINT_SIDES = ("joint_a", "joint_b")
MASKED = table_schema("utt_id kind pathway condition threshold num_frames num_bins values")
MASKED_PARTITION = "method"
SCORES = table_schema("list label utt_a utt_b model condition scorer score")
METRICS = table_schema(
    "model condition list scorer metric value",
    (
        # XAI metrics only (Quantus): the metric's family (faithfulness, robustness, complexity,
        # randomisation, axiomatic) and the method explained, as "method/pathway"
        "family method",
        # multi-speaker test only (list "multispeaker"): the concatenation case, A-B ... A-B-C
        "case",
        # XAI metrics only: the utterance scored and its speaker (per-utterance rows, so the
        # report can give speaker-level intervals)
        "utt_id speaker_id",
        # the value's interval (voxray.eval.intervals: a speaker bootstrap, 95% by default) and
        # the trials / utterances it is computed from; null where none was computed (counts,
        # outputs of older versions)
        "ci_low ci_high n",
    ),
)
#: curves behind the report's plots (deletion/insertion, pixel flipping, sanity checks, DET).
CURVES = table_schema("experiment model method variant x y")
TUNE = table_schema("trial_id config metric value status")


#: the tables the stages write through a sink (``voxray.io.sink.table_sink``): path ->
#: (schema, the column its files are partitioned by, "" for none).
SINK_TABLES: dict[str, tuple[pa.Schema, str]] = {
    FEATURES_PATH: (FEATURES, FEATURES_PARTITION),
    EMBEDDINGS_PATH: (EMBEDDINGS, ""),
    ATTRIBUTIONS_PATH: (ATTRIBUTIONS, ATTRIBUTIONS_PARTITION),
    MASKED_PATH: (MASKED, MASKED_PARTITION),
}


#: what a stage's actor adds to a row that failed, for its sink to quarantine
#: (``voxray.io.sink``): the input's path and the reason (null on a row that did not fail).
FAILED_ROW = ("path", "error")


def batch_schema(
    table: pa.Schema, partition: str = "", failed: tuple[str, ...] = FAILED_ROW
) -> pa.Schema:
    """The schema of the batches a stage's actors hand its sink: ``table``'s columns, the
    partition column the sink splits the files by, and the columns of a failed row (``failed``:
    ``FAILED_ROW``, with ``cause`` where the stage tells causes apart; empty where no row
    fails)."""
    extra = [n for n in (partition, *failed) if n]
    return pa.schema([*table, *(pa.field(n, COLUMN_TYPES[n]) for n in extra)])


def floats_column(arrays: list[np.ndarray]) -> pa.Array:
    """A list<float32> column from per-row arrays of any shape (flattened row-major)."""
    flat = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in arrays]
    offsets = np.zeros(len(flat) + 1, dtype=np.int32)
    if flat:
        np.cumsum([len(a) for a in flat], out=offsets[1:])
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.float32()))


def column_arrays(table: pa.Table | pa.RecordBatch, name: str) -> list[np.ndarray]:
    """The rows of a list<float32> column as float32 numpy views, without a Python loop per
    value."""
    col = table.column(name)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out: list[np.ndarray] = []
    for chunk in chunks:
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        out.extend(values[offsets[i] : offsets[i + 1]] for i in range(len(chunk)))
    return out


def matrices(table: pa.Table | pa.RecordBatch, name: str = "values") -> list[np.ndarray]:
    """Rows of a frames x bins column as (num_frames, num_bins) arrays."""
    frames = table.column("num_frames").to_numpy()
    bins = table.column("num_bins").to_numpy()
    return [
        a.reshape(int(t), int(f))
        for a, t, f in zip(column_arrays(table, name), frames, bins, strict=True)
    ]


def table(schema: pa.Schema, columns: dict[str, object]) -> pa.Table:
    """A table of ``schema`` from python/numpy/arrow columns; a missing column is an error
    unless it is optional (then null)."""
    missing = [n for n in required(schema) if n not in columns]
    if missing:
        raise KeyError(f"columns missing for schema: {missing}")
    rows = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for f in schema:
        col = columns.get(f.name)
        if col is None:
            arrays.append(pa.nulls(rows, f.type))
            continue
        arrays.append(
            col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col, type=f.type)
        )
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data``'s columns of ``schema`` in its order and types; optional ones it lacks are null."""
    missing = [n for n in required(schema) if n not in data.column_names]
    if missing:
        raise KeyError(f"columns missing for schema: {missing}")
    for f in schema:
        if f.name not in data.column_names:
            data = data.append_column(f.name, pa.nulls(data.num_rows, f.type))
    return data.select(schema.names).cast(schema)


def value_set(schema: pa.Schema, column: str, values: Iterable[Any]) -> pa.Array:
    """``values`` as an array of ``column``'s type in ``schema``, for ``is_in`` filters.

    pyarrow types an empty Python list as null and then refuses it against a typed column
    ("Array type doesn't match type of values set: string vs null"); a typed array, empty or
    not, selects what it should."""
    return pa.array(list(values), type=schema.field(column).type)


def is_in(schema: pa.Schema, column: str, values: Iterable[Any]) -> pc.Expression:
    """The filter ``column in values`` with the value set typed from ``schema``."""
    return pc.field(column).isin(value_set(schema, column, values))


@dataclass(frozen=True)
class MetricRow:
    """One row of metrics/ (``METRICS``), named instead of positional: writers build these and
    ``metrics_table`` checks them against the schema. The optional columns default to null."""

    model: str
    condition: str
    list: str
    scorer: str
    metric: str
    value: float
    family: str | None = None
    method: str | None = None
    case: str | None = None
    utt_id: str | None = None
    speaker_id: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


def metrics_table(rows: Iterable[MetricRow]) -> pa.Table:
    """The ``METRICS`` table of ``rows`` (its columns are ``MetricRow``'s fields)."""
    rows = list(rows)
    names = [f.name for f in fields(MetricRow)]
    return table(METRICS, {n: [getattr(r, n) for r in rows] for n in names})
