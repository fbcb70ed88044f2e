"""Scan a VoxCeleb1 or VoxCeleb2 tree (local or s3://) into utterances, trials, metadata, splits.

VoxCeleb1: ``wav/<speaker>/<video>/<NNNNN>.wav`` (or ``.flac``). VoxCeleb2:
``{dev,test}/aac/<speaker>/<video>/<NNNNN>.m4a``, or the same trees converted to wav/flac
(in place, or under ``{dev,test}/{wav,flac}/``). Trial lists, ``iden_split.txt`` and the
metadata CSVs sit at the root. Only text is read here; audio headers are probed later, in
parallel (``voxray.corpus.audio``). Everything that cannot be used (a file at the wrong
depth, a malformed list line, a trial naming an absent utterance) becomes a quarantine row
with its reason, and the scan goes on.

Splits follow VoxCeleb1 verification: a speaker whose metadata Set is ``dev`` trains, any
other speaker with a metadata row is a test speaker. A speaker without a row falls back to
the no-metadata rule: test when a trial list names it (or, for VoxCeleb2, when its files
are under ``test/``), train otherwise.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from typing import Literal

from voxray.config import CorpusConfig
from voxray.corpus.lists import (
    STAGE,
    UnsafePathError,
    parse_iden_split,
    parse_meta,
    parse_trial_list,
    safe_relpath,
)
from voxray.corpus.records import QuarantineRecord, SpeakerMeta, Trial, Utterance
from voxray.io.storage import Storage, StorageError
from voxray.log import get_logger

log = get_logger(__name__)

VOX1_EXTS = (".wav", ".flac")
VOX2_EXTS = (".m4a", ".wav", ".flac")
VOX2_SETS = ("dev", "test")
VOX2_CODECS = ("aac", "wav", "flac")
META_FILES = ("vox1_meta.csv", "vox2_meta.csv")
IDEN_SPLIT = "iden_split.txt"
#: when one utterance exists in several formats, the first of these wins.
_EXT_PREFERENCE = {".wav": 0, ".flac": 1, ".m4a": 2}


class CorpusError(ValueError):
    """A data root that holds no corpus in a known layout; the message names the root."""


@dataclass
class CorpusScan:
    """What a scan found. ``split_of`` maps every kept speaker to ``train`` or ``test``."""

    layout: Literal["vox1", "vox2"]
    utterances: list[Utterance]
    trials: dict[str, list[Trial]]
    iden_split: dict[str, int]
    meta: dict[str, SpeakerMeta]
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    split_of: dict[str, str] = field(default_factory=dict)


def scan_corpus(storage: Storage, cfg: CorpusConfig) -> CorpusScan:
    """Scan the corpus under ``storage``; raises ``CorpusError`` when it holds neither layout."""
    quarantine: list[QuarantineRecord] = []
    layout, files = _detect_layout(storage)
    parse = _vox1_utterance if layout == "vox1" else _vox2_utterance
    found: dict[str, list[Utterance]] = {}
    for rel in files:
        utt = parse(rel, quarantine)
        if utt is not None:
            found.setdefault(utt.utt_id, []).append(utt)
    utterances = _dedupe(found, quarantine)

    meta: dict[str, SpeakerMeta] = {}
    for name in META_FILES:
        if storage.exists(name):
            rows, bad = parse_meta(_read_text(storage, name), name)
            meta.update(rows)
            quarantine += bad

    present = {u.utt_id for u in utterances}
    trials: dict[str, list[Trial]] = {}
    for name in cfg.trial_lists:
        rel = safe_relpath(name)
        if not storage.exists(rel):
            log.info("corpus: no %s under %s", rel, storage.root)
            continue
        parsed, bad = parse_trial_list(_read_text(storage, rel), rel)
        quarantine += bad
        trials[rel] = []
        for t in parsed:
            absent = next((u for u in (t.utt_a, t.utt_b) if u not in present), None)
            if absent is not None:
                where = f"{rel}:{t.line_no}"
                quarantine.append(
                    QuarantineRecord(
                        where, STAGE, f"{where}: utterance {absent} is not in the corpus"
                    )
                )
            else:
                trials[rel].append(t)

    iden_split: dict[str, int] = {}
    if storage.exists(IDEN_SPLIT):
        parsed_split, bad = parse_iden_split(_read_text(storage, IDEN_SPLIT), IDEN_SPLIT)
        quarantine += bad
        iden_split = {u: s for u, s in parsed_split.items() if u in present}

    split_of = _splits(utterances, trials, meta, layout)
    if cfg.max_utterances > 0 and len(utterances) > cfg.max_utterances:
        utterances, trials = subset_utterances(utterances, trials, cfg.max_utterances)
        kept = {u.utt_id for u in utterances}
        iden_split = {u: s for u, s in iden_split.items() if u in kept}
        speakers = {u.speaker_id for u in utterances}
        split_of = {s: v for s, v in split_of.items() if s in speakers}
    return CorpusScan(layout, utterances, trials, iden_split, meta, quarantine, split_of)


def subset_utterances(
    utterances: list[Utterance], trials: dict[str, list[Trial]], max_utterances: int
) -> tuple[list[Utterance], dict[str, list[Trial]]]:
    """At most ``max_utterances`` utterances, chosen by a hash of their ids (stable across runs).

    Utterances named by a trial list come first so that evaluation keeps its trials: when
    they all fit, every one is kept and the rest of the budget is filled with other
    utterances in hash order. When they do not fit, whole trials are taken in hash order of
    (list, utt_a, utt_b) while both sides fit, and trials that lost a side are dropped.
    """
    by_hash = sorted(utterances, key=lambda u: _digest(u.utt_id))
    named = {u for ts in trials.values() for t in ts for u in (t.utt_a, t.utt_b)}
    if len(named) <= max_utterances:
        keep = set(named)
    else:
        keep = set()
        ordered = sorted(
            (t for ts in trials.values() for t in ts),
            key=lambda t: _digest(f"{t.list_name}\0{t.utt_a}\0{t.utt_b}"),
        )
        for t in ordered:
            need = {t.utt_a, t.utt_b} - keep
            if len(keep) + len(need) <= max_utterances:
                keep |= need
    for u in by_hash:
        if len(keep) >= max_utterances:
            break
        keep.add(u.utt_id)
    kept_trials = {
        name: [t for t in ts if t.utt_a in keep and t.utt_b in keep] for name, ts in trials.items()
    }
    dropped = sum(len(ts) for ts in trials.values()) - sum(len(ts) for ts in kept_trials.values())
    log.info(
        "corpus: kept %d of %d utterances (max_utterances); %d trials lost a side and were dropped",
        len(keep),
        len(utterances),
        dropped,
    )
    return sorted((u for u in utterances if u.utt_id in keep), key=lambda u: u.utt_id), kept_trials


def _read_text(storage: Storage, rel: str) -> str:
    """A list or metadata file as text; bytes that are not UTF-8 (a name in Latin-1) become U+FFFD
    instead of failing the scan: ids and paths are ASCII."""
    return storage.read_bytes(rel).decode("utf-8", errors="replace")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _detect_layout(storage: Storage) -> tuple[Literal["vox1", "vox2"], list[str]]:
    files = list_files(storage, "wav")
    if files:
        return "vox1", files
    files = [f for s in VOX2_SETS for f in list_files(storage, s)]
    if files:
        return "vox2", files
    raise CorpusError(
        f"no audio under {storage.root}: expected wav/<speaker>/<video>/<file>.wav (VoxCeleb1) "
        "or dev/aac/<speaker>/<video>/<file>.m4a (VoxCeleb2)"
    )


def list_files(storage: Storage, rel: str) -> list[str]:
    """Relative paths of all files below ``rel``, sorted; dot-files (``.DS_Store``) skipped.

    Unlike ``Storage.find`` this keeps names starting with ``_``: YouTube video ids (the
    folders of both VoxCelebs) may begin with an underscore.
    """
    base = storage.path(rel)
    try:
        if not storage.fs.exists(base):
            return []
        found = storage.fs.find(base)
    except Exception as exc:  # re-raised with the path named
        raise StorageError(f"cannot list {storage.uri(rel)}: {type(exc).__name__}: {exc}") from exc
    out = []
    for p in found:
        r = storage.relative(p)
        if not any(part.startswith(".") for part in r.split("/")):
            out.append(r)
    return sorted(out)


def _vox1_utterance(rel: str, quarantine: list[QuarantineRecord]) -> Utterance | None:
    return _utterance(rel, 1, VOX1_EXTS, "wav/<speaker>/<video>/<file>", quarantine)


def _vox2_utterance(rel: str, quarantine: list[QuarantineRecord]) -> Utterance | None:
    parts = rel.split("/")
    if len(parts) < 2 or parts[1] not in VOX2_CODECS:
        quarantine.append(
            QuarantineRecord(rel, STAGE, f"{rel}: not under {{dev,test}}/{{aac,wav,flac}}/")
        )
        return None
    return _utterance(
        rel, 2, VOX2_EXTS, f"{parts[0]}/{parts[1]}/<speaker>/<video>/<file>", quarantine
    )


def _utterance(
    rel: str, prefix: int, exts: tuple[str, ...], pattern: str, quarantine: list[QuarantineRecord]
) -> Utterance | None:
    """The utterance a listed file is, or None with a quarantine row saying why not."""
    try:
        path = safe_relpath(rel)
    except UnsafePathError as exc:
        quarantine.append(QuarantineRecord(rel, STAGE, str(exc)))
        return None
    parts = path.split("/")
    if len(parts) != prefix + 3:
        where = f"{len(parts) - prefix} levels below {'/'.join(parts[:prefix])}/"
        quarantine.append(QuarantineRecord(path, STAGE, f"{path}: not at {pattern} ({where})"))
        return None
    speaker, video, name = parts[prefix:]
    stem, ext = posixpath.splitext(name)
    if ext.lower() not in exts or not stem:
        why = f"extension {ext or '(none)'!r} is not one of {', '.join(exts)}"
        quarantine.append(QuarantineRecord(path, STAGE, f"{path}: {why}"))
        return None
    return Utterance(f"{speaker}/{video}/{stem}", speaker, video, path, ext.lower())


def _dedupe(
    found: dict[str, list[Utterance]], quarantine: list[QuarantineRecord]
) -> list[Utterance]:
    """One file per utterance id: wav before flac before m4a; the others are quarantined."""
    out = []
    for utt_id in sorted(found):
        candidates = sorted(found[utt_id], key=lambda u: (_EXT_PREFERENCE.get(u.ext, 9), u.path))
        out.append(candidates[0])
        for other in candidates[1:]:
            why = f"duplicate of {candidates[0].path} (utterance {utt_id})"
            quarantine.append(QuarantineRecord(other.path, STAGE, f"{other.path}: {why}"))
    return out


def _splits(
    utterances: list[Utterance],
    trials: dict[str, list[Trial]],
    meta: dict[str, SpeakerMeta],
    layout: str,
) -> dict[str, str]:
    named = {u.split("/", 1)[0] for ts in trials.values() for t in ts for u in (t.utt_a, t.utt_b)}
    vox2_test = {
        u.speaker_id for u in utterances if layout == "vox2" and u.path.startswith("test/")
    }
    split_of: dict[str, str] = {}
    for speaker in sorted({u.speaker_id for u in utterances}):
        if speaker in meta:
            split_of[speaker] = "train" if meta[speaker].set == "dev" else "test"
        else:
            split_of[speaker] = "test" if speaker in named or speaker in vox2_test else "train"
    return split_of
