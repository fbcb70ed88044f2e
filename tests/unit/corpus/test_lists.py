"""Parsers of the published VoxCeleb text formats: trial lists, iden_split, vox1/vox2 metadata,
with the real files' quirks (CRLF, trailing blanks, padded fields) and malformed lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxray.corpus.lists import (
    UnsafePathError,
    parse_iden_split,
    parse_meta,
    parse_trial_list,
    safe_relpath,
    utt_id_from_path,
)
from voxray.corpus.records import SpeakerMeta, Trial

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("id10270/x6uYqmx31kE/00001.wav", "id10270/x6uYqmx31kE/00001.wav"),
        ("./id10270//x6uYqmx31kE/./00001.wav", "id10270/x6uYqmx31kE/00001.wav"),
        ("id10270\\x6uYqmx31kE\\00001.wav", "id10270/x6uYqmx31kE/00001.wav"),
        ("a/b/../c.wav", "a/c.wav"),
        ("id10270/_underscore/00001.wav", "id10270/_underscore/00001.wav"),
    ],
    ids=["plain", "dots-and-double-slash", "backslashes", "inner-dotdot", "underscore-video"],
)
def test_safe_relpath_normalises(path: str, expected: str) -> None:
    assert safe_relpath(path) == expected


@pytest.mark.parametrize(
    "path, why",
    [
        ("/etc/passwd", "absolute"),
        ("C:/corpus/x.wav", "absolute"),
        ("../outside.wav", "escapes"),
        ("id10270/../../outside.wav", "escapes"),
        ("id10270/x\x00.wav", "NUL"),
        ("s3://bucket/x.wav", "URI"),
        ("", "empty"),
        (".", "root itself"),
    ],
    ids=["absolute", "drive", "dotdot", "nested-dotdot", "nul", "uri", "empty", "dot"],
)
def test_safe_relpath_rejects(path: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why) as info:
        safe_relpath(path)
    assert isinstance(info.value, ValueError)
    assert repr(path) in str(info.value)


@pytest.mark.parametrize(
    "path, utt",
    [
        ("id10270/x6uYqmx31kE/00001.wav", "id10270/x6uYqmx31kE/00001"),
        ("id10270/x6uYqmx31kE/00001.flac", "id10270/x6uYqmx31kE/00001"),
        ("id00012/21Uxsk56VDQ/00001.m4a", "id00012/21Uxsk56VDQ/00001"),
        ("id10270/x6uYqmx31kE/00001.WAV", "id10270/x6uYqmx31kE/00001"),
        ("id10270/x6uYqmx31kE/00001", "id10270/x6uYqmx31kE/00001"),
    ],
    ids=["wav", "flac", "m4a", "upper-case-ext", "no-ext"],
)
def test_utt_id_from_path(path: str, utt: str) -> None:
    assert utt_id_from_path(path) == utt


def test_trial_list_in_published_format() -> None:
    text = (FIXTURES / "veri_test2_head.txt").read_text()
    trials, bad = parse_trial_list(text, "veri_test2.txt")
    assert bad == []
    assert [t.label for t in trials] == [1, 0, 1, 0, 1, 0]
    assert trials[1] == Trial(
        "veri_test2.txt", 0, "id10270/x6uYqmx31kE/00001", "id10300/ize_eiCFEg0/00003", 2
    )


def test_trial_list_quirks_crlf_blanks_and_extensions() -> None:
    text = (
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\r\n"
        "0\tid10270/x6uYqmx31kE/00001.flac   id10300/ize_eiCFEg0/00003.flac  \t\r\n"
        "\r\n"
        "1 id10270/x6uYqmx31kE/00002.m4a id10270/8jEAjG6SegY/00009.m4a\r\n"
        "\r\n   \r\n"
    )
    trials, bad = parse_trial_list(text, "list_test_all2.txt")
    assert bad == []
    assert [(t.label, t.utt_a, t.utt_b, t.line_no) for t in trials] == [
        (1, "id10270/x6uYqmx31kE/00001", "id10270/8jEAjG6SegY/00008", 1),
        (0, "id10270/x6uYqmx31kE/00001", "id10300/ize_eiCFEg0/00003", 2),
        (1, "id10270/x6uYqmx31kE/00002", "id10270/8jEAjG6SegY/00009", 4),
    ]


def test_malformed_trial_lines_are_quarantined_with_file_and_line() -> None:
    good = "1 id10270/a/00001.wav id10270/b/00001.wav"
    lines = [
        good,
        "x id10270/a/00001.wav id10270/b/00001.wav",
        "1 id10270/a/00001.wav",
        "1 ../../etc/passwd id10270/b/00001.wav",
        "2 id10270/a/00001.wav id10270/b/00001.wav",
        "0 id10270/a/00001.mp3 id10270/b/00001.wav",
        "1 id10270/00001.wav id10270/b/00001.wav",
        good.replace("00001", "00002"),
    ]
    trials, bad = parse_trial_list("\r\n".join(lines) + "\r\n", "veri_test2.txt")
    assert [t.line_no for t in trials] == [1, 8]
    reasons = {q.path: q.reason for q in bad}
    assert set(reasons) == {f"veri_test2.txt:{n}" for n in range(2, 8)}
    assert reasons["veri_test2.txt:2"] == "veri_test2.txt:2: label 'x' is not 0 or 1"
    assert reasons["veri_test2.txt:3"].startswith(
        "veri_test2.txt:3: expected '<0|1> <path A> <path B>', got 2 fields"
    )
    assert "escapes the data root" in reasons["veri_test2.txt:4"]
    assert reasons["veri_test2.txt:5"] == "veri_test2.txt:5: label '2' is not 0 or 1"
    assert "'.mp3'" in reasons["veri_test2.txt:6"]
    assert "is not <speaker>/<video>/<file>" in reasons["veri_test2.txt:7"]
    assert all(q.stage == "manifest" for q in bad)


def test_iden_split() -> None:
    text = (
        "1 id10001/1zcIwhmdeo4/00001.wav\r\n"
        "3 id10001/1zcIwhmdeo4/00002.wav  \r\n"
        "2 id10002/C7k7C-PDvAA/00001.flac\r\n"
        "4 id10002/C7k7C-PDvAA/00002.wav\r\n"
        "1 id10001/1zcIwhmdeo4/00002.wav\r\n"
        "3\r\n\r\n"
    )
    split, bad = parse_iden_split(text, "iden_split.txt")
    assert split == {
        "id10001/1zcIwhmdeo4/00001": 1,
        "id10001/1zcIwhmdeo4/00002": 3,
        "id10002/C7k7C-PDvAA/00001": 2,
    }
    reasons = {q.path: q.reason for q in bad}
    assert reasons["iden_split.txt:4"] == "iden_split.txt:4: split '4' is not 1, 2 or 3"
    assert (
        reasons["iden_split.txt:5"]
        == "iden_split.txt:5: id10001/1zcIwhmdeo4/00002 is split 1 here but 3 at line 2"
    )
    assert reasons["iden_split.txt:6"].startswith(
        "iden_split.txt:6: expected '<1|2|3> <path>', got 1 fields"
    )


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_vox1_meta_with_quirks(crlf: bool) -> None:
    text = (FIXTURES / "vox1_meta.csv").read_text()
    if crlf:
        text = text.replace("\n", "\r\n")
    meta, bad = parse_meta(text, "vox1_meta.csv")
    assert bad == []
    assert meta["id10001"] == SpeakerMeta("id10001", "m", "Ireland", "dev")
    assert meta["id10002"].set == "dev"  # "dev " with a trailing blank
    assert meta["id10003"] == SpeakerMeta(
        "id10003", "m", "India", "dev"
    )  # trailing tabs, space in the name
    assert meta["id10309"] == SpeakerMeta("id10309", "f", "USA", "test")
    assert meta["id10310"].nationality == "New Zealand"
    assert len(meta) == 6


def test_vox2_meta_padded_csv() -> None:
    meta, bad = parse_meta((FIXTURES / "vox2_meta.csv").read_text(), "vox2_meta.csv")
    assert bad == []
    assert meta == {
        "id00012": SpeakerMeta("id00012", "m", "", "dev"),
        "id00015": SpeakerMeta("id00015", "m", "", "test"),
        "id00016": SpeakerMeta("id00016", "f", "", "dev"),
        "id00017": SpeakerMeta("id00017", "f", "", "test"),
    }


def test_malformed_meta_rows_are_quarantined() -> None:
    text = (
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10001\tA\tm\tUSA\tdev\n"
        "id10002\tB\tx\tUSA\tdev\n"
        "id10003\tC\tf\tUSA\ttrain\n"
        "id10004 D f USA dev\n"
        "id10001\tA2\tm\tUSA\ttest\n"
        "id/10005\tE\tf\tUK\tdev\n"
    )
    meta, bad = parse_meta(text, "vox1_meta.csv")
    assert list(meta) == ["id10001"] and meta["id10001"].set == "dev"
    reasons = [q.reason for q in bad]
    assert reasons == [
        "vox1_meta.csv:3: gender 'x' of id10002 is not m or f",
        "vox1_meta.csv:4: set 'train' of id10003 is not dev or test",
        "vox1_meta.csv:5: expected 5 tab-separated fields, got 1",
        "vox1_meta.csv:6: second row for id10001 (first at line 2)",
        "vox1_meta.csv:7: speaker id 'id/10005' is not a folder name",
    ]


def test_meta_without_required_columns() -> None:
    meta, bad = parse_meta("speaker,sex\nid1,m\n", "vox2_meta.csv")
    assert meta == {}
    assert len(bad) == 1 and bad[0].reason.startswith(
        "vox2_meta.csv:1: header 'speaker,sex' lacks column(s) VoxCeleb ID, Gender, Set"
    )
