"""``voxray manifest``: scan the corpus, probe every file's header, write the manifest.

Listing and list parsing happen on the driver (cheap text); reading audio headers is the
part that scales with the corpus: on a Ray cluster it streams through a Ray Data actor pool
over the nodes, on one machine it runs on a thread pool in this process (header reads wait on
I/O; a local Ray would cost more to start than a VoxCeleb1 probe takes). Outputs:
manifest.parquet (one row per readable utterance), trials.parquet (the parsed trial lists)
and quarantine rows for files and list lines that cannot be used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from voxray import schema
from voxray.config import CorpusConfig
from voxray.corpus.audio import AudioError, probe_audio
from voxray.corpus.layout import CorpusScan, scan_corpus
from voxray.io.quarantine import clear_quarantine, write_quarantine
from voxray.io.storage import Storage
from voxray.log import Progress, get_logger
from voxray.pipeline.context import MANIFEST, TRIALS, RunContext, StageResult

log = get_logger(__name__)
STAGE = "manifest"
#: threads probing headers in this process (reads of local disks or s3:// wait on I/O).
PROBE_THREADS = 16


class ProbeAudio:
    """map_batches callable: header facts of each file, or the reason it is unusable."""

    def __init__(self, data: Storage, cfg: CorpusConfig) -> None:
        self.data = data
        self.cfg = cfg

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        samples, rates, errors = [0] * n, [0] * n, [None] * n
        for i, path in enumerate(batch.column("path").to_pylist()):
            try:
                info = probe_audio(self.data, path, self.cfg)
                samples[i], rates[i] = info.num_samples, info.sample_rate
            except (
                AudioError
            ) as exc:  # a bad file; a storage outage is not caught and fails the stage
                errors[i] = str(exc)
        return (
            batch.append_column("num_samples", pa.array(samples, pa.int64()))
            .append_column("sample_rate", pa.array(rates, pa.int32()))
            .append_column("error", pa.array(errors, pa.string()))
        )


def _utterance_rows(scan: CorpusScan) -> list[dict[str, Any]]:
    rows = []
    for u in scan.utterances:
        meta = scan.meta.get(u.speaker_id)
        rows.append(
            {
                "utt_id": u.utt_id,
                "speaker_id": u.speaker_id,
                "video_id": u.video_id,
                "path": u.path,
                "split": scan.split_of.get(u.speaker_id, "train"),
                "gender": meta.gender if meta else "",
                "iden_split": int(scan.iden_split.get(u.utt_id, 0)),
            }
        )
    return rows


def _trials_table(scan: CorpusScan, known: set[str]) -> tuple[pa.Table, list[dict[str, str]]]:
    """Trials whose both sides survived probing; the others are quarantined with their line."""
    cols: dict[str, list[Any]] = {"list": [], "label": [], "utt_a": [], "utt_b": []}
    dropped = []
    for name, trials in scan.trials.items():
        for t in trials:
            missing = [u for u in (t.utt_a, t.utt_b) if u not in known]
            if missing:
                dropped.append(
                    {
                        "path": f"{name}:{t.line_no}",
                        "error": f"{name}:{t.line_no}: utterance {missing[0]} is quarantined",
                    }
                )
                continue
            cols["list"].append(name)
            cols["label"].append(t.label)
            cols["utt_a"].append(t.utt_a)
            cols["utt_b"].append(t.utt_b)
    return schema.table(schema.TRIALS, cols), dropped


def _probe(ctx: RunContext, rows: list[dict]) -> tuple[list[pa.Table], list[dict[str, str]]]:
    """The utterance files probed (``_probed``), with progress: the manifest rows of the
    readable ones, and a quarantine row (path, error) per unreadable one."""
    good: list[pa.Table] = []
    bad: list[dict[str, str]] = []
    progress = Progress(f"stage {STAGE}", len(rows))
    for batch in _probed(ctx, rows):
        progress.update(progress.done + batch.num_rows)
        ok = batch.filter(pc.is_null(batch.column("error")))
        failed = batch.filter(pc.is_valid(batch.column("error")))
        paths, errors = failed.column("path").to_pylist(), failed.column("error").to_pylist()
        bad += [{"path": p, "error": e} for p, e in zip(paths, errors, strict=True)]
        if ok.num_rows:
            good.append(ok)
    progress.close()
    return good, bad


def run_manifest(ctx: RunContext) -> StageResult:
    cfg = ctx.cfg
    data, out = ctx.data, ctx.out
    scan = scan_corpus(data, cfg.corpus)
    log.info(
        "manifest: %s layout, %d utterance files, %d trial lists",
        scan.layout,
        len(scan.utterances),
        len(scan.trials),
    )
    rows = _utterance_rows(scan)
    result = StageResult(STAGE, inputs=len(rows) + len(scan.quarantine))
    quarantine_rows = [{"path": q.path, "error": q.reason} for q in scan.quarantine]
    good, bad = _probe(ctx, rows)
    quarantine_rows += bad
    manifest = _manifest_table(good)
    trials, dropped = _trials_table(scan, set(manifest.column("utt_id").to_pylist()))
    quarantine_rows += dropped
    clear_quarantine(out, STAGE)
    write_quarantine(
        out,
        STAGE,
        pa.Table.from_pylist(
            quarantine_rows, schema=pa.schema([("path", pa.string()), ("error", pa.string())])
        ),
    )
    out.write_table(MANIFEST, manifest)
    out.write_table(TRIALS, trials)
    result.outputs = manifest.num_rows
    result.quarantined = len(quarantine_rows) - len(dropped)
    result.info = {
        "layout": scan.layout,
        "speakers": len(set(manifest.column("speaker_id").to_pylist())),
        "trials": trials.num_rows,
        "trial_lines_dropped": len(dropped),
        "hours": round(float(pc.sum(manifest.column("duration_s")).as_py() or 0.0) / 3600, 3),
    }
    return result.check()


def _probed(ctx: RunContext, rows: list[dict[str, Any]]) -> Iterator[pa.Table]:
    """``rows`` with ProbeAudio's columns, in batches: on the cluster's nodes when this
    command joined one, else on PROBE_THREADS threads here."""
    if not rows:
        return
    cfg = ctx.cfg
    rc = cfg.corpus.resources
    size = max(rc.batch_size, 1)
    if not ctx.on_cluster:
        probe = ProbeAudio(ctx.data, cfg.corpus)
        batches = [pa.Table.from_pylist(rows[i : i + size]) for i in range(0, len(rows), size)]
        with ThreadPoolExecutor(PROBE_THREADS) as pool:
            yield from pool.map(probe, batches)
        return
    import ray
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // size, 200)))
    probed = ds.map_batches(
        ProbeAudio,
        fn_constructor_args=(ctx.data, cfg.corpus),
        batch_format="pyarrow",
        batch_size=rc.batch_size,
        compute=ActorPoolStrategy(size=rc.concurrency),
        num_cpus=min(rc.num_cpus, 1.0),
    )
    yield from probed.iter_batches(batch_format="pyarrow", batch_size=4096)


def _manifest_table(parts: list[pa.Table]) -> pa.Table:
    if not parts:
        return schema.MANIFEST.empty_table()
    t = pa.concat_tables(parts)
    duration = pc.divide(
        pc.cast(t.column("num_samples"), pa.float64()),
        pc.cast(t.column("sample_rate"), pa.float64()),
    )
    t = t.append_column("duration_s", duration)
    t = t.sort_by("utt_id")
    return t.select(schema.MANIFEST.names).cast(schema.MANIFEST)
