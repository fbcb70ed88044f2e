"""Plain records of a VoxCeleb-layout corpus: utterances, trials, speaker metadata, rejects.

They are frozen so a scan can be shared between threads and pickled to Ray workers as is.
Utterances are named by ``utt_id`` (``speaker/video/file`` without extension), the key every
output table uses; trials refer to utterances by that id, never by path, so a list that
names ``.wav`` files matches a corpus converted to ``.flac``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Utterance:
    """One audio file. ``path`` is relative to the data root, e.g.
    ``wav/id10270/x6uYqmx31kE/00001.wav``."""

    utt_id: str
    speaker_id: str
    video_id: str
    path: str
    ext: str


@dataclass(frozen=True)
class Trial:
    """One verification trial line: ``label`` 1 for same speaker, 0 for different speakers."""

    list_name: str
    label: int
    utt_a: str
    utt_b: str
    line_no: int


@dataclass(frozen=True)
class SpeakerMeta:
    """A metadata row: gender ``m``/``f``, nationality (empty for VoxCeleb2), set
    ``dev``/``test``."""

    speaker_id: str
    gender: str
    nationality: str
    set: str


@dataclass(frozen=True)
class QuarantineRecord:
    """An input that cannot be used and why; ``path`` is a file, or ``list:line`` for a list
    line."""

    path: str
    stage: str
    reason: str
