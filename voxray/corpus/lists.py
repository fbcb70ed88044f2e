"""Parsers for the published VoxCeleb text files: trial lists, ``iden_split.txt``, metadata.

The real files have quirks (CRLF line ends, trailing blanks and tabs, padded CSV fields,
lists naming ``.wav`` files in a corpus converted to ``.flac``), and a corrupted or edited
copy may hold malformed lines. A bad line never aborts parsing: it becomes a
``QuarantineRecord`` whose reason starts with ``<file>:<line>:`` and the rest of the file
is used. Every path read from a list goes through ``safe_relpath`` first, so a list cannot
make a later stage read outside the data root.
"""

from __future__ import annotations

import posixpath
import re
from typing import Iterator, NamedTuple

from voxray.corpus.records import QuarantineRecord, SpeakerMeta, Trial

STAGE = "manifest"
AUDIO_EXTS = (".wav", ".flac", ".m4a")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """A path from a list or a listing that could escape the data root; the message names it."""


def safe_relpath(p: str) -> str:
    """``p`` as a normalised relative posix path, or ``UnsafePathError``.

    Rejects empty paths, NUL bytes, absolute paths (``/x``, ``C:/x``), URIs and ``..``
    components that climb out of the root; backslashes count as separators (lists written
    on Windows). ``a/./b/../c`` becomes ``a/c``.
    """
    if "\x00" in p:
        raise UnsafePathError(f"unsafe path {p!r}: contains a NUL byte")
    q = p.strip().replace("\\", "/")
    if not q:
        raise UnsafePathError(f"unsafe path {p!r}: empty")
    if "://" in q:
        raise UnsafePathError(
            f"unsafe path {p!r}: a URI, expected a path relative to the data root"
        )
    if q.startswith("/") or _DRIVE.match(q):
        raise UnsafePathError(
            f"unsafe path {p!r}: absolute, expected a path relative to the data root"
        )
    norm = posixpath.normpath(q)
    if norm == ".." or norm.startswith("../"):
        raise UnsafePathError(f"unsafe path {p!r}: escapes the data root")
    if norm == ".":
        raise UnsafePathError(f"unsafe path {p!r}: names the data root itself, not a file")
    return norm


def utt_id_from_path(p: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270/x6uYqmx31kE/00001`` (also .flac/.m4a).

    A path without extension is taken as an utterance id already. Raises ``ValueError``
    (``UnsafePathError`` for escapes) saying what is wrong.
    """
    rel = safe_relpath(p)
    parts = rel.split("/")
    if len(parts) != 3:
        raise ValueError(f"path {p!r} is not <speaker>/<video>/<file>")
    stem, ext = posixpath.splitext(parts[2])
    if ext and ext.lower() not in AUDIO_EXTS:
        raise ValueError(
            f"path {p!r} has extension {ext!r}, expected one of {', '.join(AUDIO_EXTS)}"
        )
    if not stem:
        raise ValueError(f"path {p!r} has an empty file name")
    return "/".join([parts[0], parts[1], stem])


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without trailing blanks), skipping blank lines and a BOM."""
    for n, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = line.rstrip()
        if line.strip():
            yield n, line


def _reject(name: str, n: int, why: str) -> QuarantineRecord:
    return QuarantineRecord(path=f"{name}:{n}", stage=STAGE, reason=f"{name}:{n}: {why}")


def parse_trial_list(text: str, name: str) -> tuple[list[Trial], list[QuarantineRecord]]:
    """Lines ``<0|1> <path A> <path B>`` (paths relative to wav/) -> trials and rejects."""
    trials: list[Trial] = []
    bad: list[QuarantineRecord] = []
    for n, line in _lines(text):
        fields = line.split()
        if len(fields) != 3:
            bad.append(
                _reject(name, n, f"expected '<0|1> <path A> <path B>', got {len(fields)} fields")
            )
            continue
        label, a, b = fields
        if label not in ("0", "1"):
            bad.append(_reject(name, n, f"label {label!r} is not 0 or 1"))
            continue
        try:
            utt_a, utt_b = utt_id_from_path(a), utt_id_from_path(b)
        except ValueError as exc:
            bad.append(_reject(name, n, str(exc)))
            continue
        trials.append(Trial(list_name=name, label=int(label), utt_a=utt_a, utt_b=utt_b, line_no=n))
    return trials, bad


def parse_iden_split(
    text: str, name: str = "iden_split.txt"
) -> tuple[dict[str, int], list[QuarantineRecord]]:
    """Lines ``<1|2|3> <path>`` (1 train, 2 validation, 3 test) -> {utt_id: split} and rejects."""
    split: dict[str, int] = {}
    first_line: dict[str, int] = {}
    bad: list[QuarantineRecord] = []
    for n, line in _lines(text):
        fields = line.split()
        if len(fields) != 2:
            bad.append(_reject(name, n, f"expected '<1|2|3> <path>', got {len(fields)} fields"))
            continue
        value, path = fields
        if value not in ("1", "2", "3"):
            bad.append(_reject(name, n, f"split {value!r} is not 1, 2 or 3"))
            continue
        try:
            utt = utt_id_from_path(path)
        except ValueError as exc:
            bad.append(_reject(name, n, str(exc)))
            continue
        if utt in split and split[utt] != int(value):
            bad.append(
                _reject(
                    name,
                    n,
                    f"{utt} is split {value} here but {split[utt]} at line {first_line[utt]}",
                )
            )
            continue
        split.setdefault(utt, int(value))
        first_line.setdefault(utt, n)
    return split, bad


_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f"}


class _MetaColumns(NamedTuple):
    """Where a metadata file keeps its fields, and how it separates them."""

    sep: str
    sep_name: str
    count: int
    speaker: int
    gender: int
    set: int
    nationality: int | None


def _meta_columns(header: str) -> _MetaColumns | str:
    """The columns a metadata header names, or what it lacks."""
    sep, sep_name = ("\t", "tab") if "\t" in header else (",", "comma")
    columns = [c.strip().lower() for c in header.split(sep)]
    index = {c: i for i, c in enumerate(columns)}
    id_col = next(
        (i for i, c in enumerate(columns) if c.startswith("voxceleb") and c.endswith("id")), None
    )
    missing = [
        c
        for c, i in (
            ("VoxCeleb ID", id_col),
            ("Gender", index.get("gender")),
            ("Set", index.get("set")),
        )
        if i is None
    ]
    if missing or id_col is None:
        return f"header {header.strip()!r} lacks column(s) {', '.join(missing)}"
    nationality = index.get("nationality")
    return _MetaColumns(
        sep, sep_name, len(columns), id_col, index["gender"], index["set"], nationality
    )


def parse_meta(text: str, name: str) -> tuple[dict[str, SpeakerMeta], list[QuarantineRecord]]:
    """VoxCeleb1 ``vox1_meta.csv`` (tab-separated) or VoxCeleb2 ``vox2_meta.csv`` (comma-separated).

    Columns are found by header name (``VoxCeleb1 ID`` / ``VoxCeleb2 ID``, ``Gender``,
    optional ``Nationality``, ``Set``); fields are stripped of padding (``id00012 ,n000012 ,m ,dev
    ``).
    """
    lines = list(_lines(text))
    if not lines:
        return {}, [_reject(name, 1, "empty metadata file")]
    header_no, header = lines[0]
    cols = _meta_columns(header)
    if isinstance(cols, str):
        return {}, [_reject(name, header_no, cols)]
    meta: dict[str, SpeakerMeta] = {}
    first_line: dict[str, int] = {}
    bad: list[QuarantineRecord] = []
    for n, line in lines[1:]:
        fields = [f.strip() for f in line.split(cols.sep)]
        while len(fields) > cols.count and not fields[-1]:
            fields.pop()
        if len(fields) != cols.count:
            bad.append(
                _reject(
                    name,
                    n,
                    f"expected {cols.count} {cols.sep_name}-separated fields, got {len(fields)}",
                )
            )
            continue
        speaker = fields[cols.speaker]
        gender = _GENDERS.get(fields[cols.gender].lower())
        subset = fields[cols.set].lower()
        if not speaker or "/" in speaker or speaker in (".", ".."):
            bad.append(_reject(name, n, f"speaker id {speaker!r} is not a folder name"))
        elif gender is None:
            bad.append(
                _reject(name, n, f"gender {fields[cols.gender]!r} of {speaker} is not m or f")
            )
        elif subset not in ("dev", "test"):
            bad.append(
                _reject(name, n, f"set {fields[cols.set]!r} of {speaker} is not dev or test")
            )
        elif speaker in meta:
            bad.append(
                _reject(name, n, f"second row for {speaker} (first at line {first_line[speaker]})")
            )
        else:
            nationality = fields[cols.nationality] if cols.nationality is not None else ""
            meta[speaker] = SpeakerMeta(
                speaker_id=speaker, gender=gender, nationality=nationality, set=subset
            )
            first_line[speaker] = n
    return meta, bad
