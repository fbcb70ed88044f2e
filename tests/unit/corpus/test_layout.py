"""scan_corpus on small hand-built trees (VoxCeleb1 and VoxCeleb2 layouts), locally and
through s3:// on a local moto server: utterances, quarantine, lists, splits, subsets."""

from __future__ import annotations

import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from tests.support.s3 import DUMMY_ENV, create_bucket, moto_s3_server, upload_tree
from voxray.config import CorpusConfig, S3Config
from voxray.corpus.audio import load_audio, probe_audio
from voxray.corpus.layout import CorpusError, CorpusScan, scan_corpus, subset_utterances
from voxray.corpus.records import Trial, Utterance
from voxray.io.storage import Storage

CFG = CorpusConfig()
META = (
    "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\r\n"
    "id10001\tAda_One\tf\tUK\tdev\r\n"
    "id10002\tBo Two\tm\tUSA\ttest \r\n"
    "id10003\tCy_Three\tm\tUSA\ttest\t\r\n"
)
GOOD = [
    "wav/id10001/vidA1xxxxxx/00001.wav",
    "wav/id10001/vidA1xxxxxx/00002.wav",
    "wav/id10001/_underscore/00001.wav",
    "wav/id10002/vidB1xxxxxx/00001.wav",
    "wav/id10002/vidB2xxxxxx/00001.wav",
    "wav/id10003/vidC1xxxxxx/00001.flac",
    "wav/id10003/vidC2xxxxxx/00001.wav",
]
BAD = {
    "wav/id10001/vidA1xxxxxx/extra/00001.wav": "not at "
    "wav/<speaker>/<video>/<file> (4 levels below "
    ""
    "wav/)",
    "wav/id10001/00001.wav": "not at wav/<speaker>/<video>/<file> (2 levels below wav/)",
    "wav/id10001/vidA1xxxxxx/00003.mp3": "extension '.mp3' is not one of .wav, .flac",
}
VERI = (
    "1 id10002/vidB1xxxxxx/00001.wav id10002/vidB2xxxxxx/00001.wav\r\n"
    "0 id10002/vidB1xxxxxx/00001.wav id10003/vidC1xxxxxx/00001.wav\r\n"
    "1 id10003/vidC1xxxxxx/00001.wav id10003/vidC9xxxxxx/00007.wav\r\n"
    "z id10003/vidC1xxxxxx/00001.wav id10002/vidB1xxxxxx/00001.wav\r\n"
    "\r\n"
)


def _wav(seconds: float = 0.5, freq: float = 200.0, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), 16000, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def _vox1(root: Path) -> Path:
    files: dict[str, bytes | str] = {
        p: _wav(fmt="FLAC" if p.endswith(".flac") else "WAV") for p in GOOD
    }
    files.update({p: _wav() for p in BAD})
    files["wav/id10001/vidA1xxxxxx/.DS_Store"] = "finder junk"
    files["vox1_meta.csv"] = META
    files["veri_test2.txt"] = VERI
    files["iden_split.txt"] = (
        "1 id10001/vidA1xxxxxx/00001.wav\n3 id10001/_underscore/00001.wav\n2 "
        "id10001/vidZ/00001.wav\n"
    )
    return _tree(root, files)


def _check_vox1(scan: CorpusScan) -> None:
    assert scan.layout == "vox1"
    assert [u.path for u in scan.utterances] == sorted(GOOD, key=lambda p: p.rsplit(".", 1)[0])
    assert scan.utterances[0] == Utterance(
        "id10001/_underscore/00001",
        "id10001",
        "_underscore",
        "wav/id10001/_underscore/00001.wav",
        ".wav",
    )
    flac = next(u for u in scan.utterances if u.ext == ".flac")
    assert flac.utt_id == "id10003/vidC1xxxxxx/00001"
    reasons = {q.path: q.reason for q in scan.quarantine}
    for path, why in BAD.items():
        assert reasons[path] == f"{path}: {why}"
    assert (
        reasons["veri_test2.txt:3"]
        == "veri_test2.txt:3: utterance id10003/vidC9xxxxxx/00007 is not in the corpus"
    )
    assert reasons["veri_test2.txt:4"] == "veri_test2.txt:4: label 'z' is not 0 or 1"
    assert len(reasons) == len(BAD) + 2
    assert all(q.stage == "manifest" for q in scan.quarantine)
    assert scan.trials == {
        "veri_test2.txt": [
            Trial("veri_test2.txt", 1, "id10002/vidB1xxxxxx/00001", "id10002/vidB2xxxxxx/00001", 1),
            Trial("veri_test2.txt", 0, "id10002/vidB1xxxxxx/00001", "id10003/vidC1xxxxxx/00001", 2),
        ]
    }
    assert scan.iden_split == {"id10001/vidA1xxxxxx/00001": 1, "id10001/_underscore/00001": 3}
    assert scan.meta["id10002"].set == "test" and scan.meta["id10001"].gender == "f"
    assert scan.split_of == {"id10001": "train", "id10002": "test", "id10003": "test"}


def test_scan_vox1_local(tmp_path: Path) -> None:
    _check_vox1(scan_corpus(Storage(str(_vox1(tmp_path))), CFG))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def test_scan_vox1_through_s3(tmp_path: Path, s3_endpoint: str) -> None:
    local = _vox1(tmp_path / "corpus")
    create_bucket("voxray-corpus", s3_endpoint)
    assert upload_tree(local, "s3://voxray-corpus/vox1", s3_endpoint) == len(GOOD) + len(BAD) + 4
    store = Storage("s3://voxray-corpus/vox1", S3Config(endpoint_url=s3_endpoint))
    scan = scan_corpus(store, CFG)
    _check_vox1(scan)
    assert asdict(scan) == asdict(scan_corpus(Storage(str(local)), CFG))
    # audio is read through the same storage
    local_store = Storage(str(local))
    for u in scan.utterances[:3]:
        assert probe_audio(store, u.path, CFG) == probe_audio(local_store, u.path, CFG)
        np.testing.assert_array_equal(
            load_audio(store, u.path, CFG), load_audio(local_store, u.path, CFG)
        )


def test_moto_server_restores_environment() -> None:
    before = {k: os.environ.get(k) for k in DUMMY_ENV}
    with moto_s3_server() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        assert all(os.environ[k] == v for k, v in DUMMY_ENV.items())
    assert {k: os.environ.get(k) for k in DUMMY_ENV} == before


def test_splits_without_metadata(tmp_path: Path) -> None:
    root = _vox1(tmp_path)
    (root / "vox1_meta.csv").unlink()
    scan = scan_corpus(Storage(str(root)), CFG)
    assert scan.meta == {}
    # id10002 and id10003 are named by veri_test2.txt trials, id10001 by none
    assert scan.split_of == {"id10001": "train", "id10002": "test", "id10003": "test"}


def test_speaker_missing_from_metadata_falls_back_to_lists(tmp_path: Path) -> None:
    root = _vox1(tmp_path)
    _tree(
        root,
        {
            "wav/id10004/vidD1xxxxxx/00001.wav": _wav(),
            "wav/id10005/vidE1xxxxxx/00001.wav": _wav(),
            "list_test_all2.txt": "0 id10004/vidD1xxxxxx/00001.wav id10001/vidA1xxxxxx/00001.wav\n",
        },
    )
    scan = scan_corpus(Storage(str(root)), CFG)
    assert scan.split_of["id10004"] == "test"  # no metadata row, named by a list
    assert scan.split_of["id10005"] == "train"  # no row, no list
    assert scan.split_of["id10001"] == "train"  # Set dev in the metadata, although a list names it
    assert [t.line_no for t in scan.trials["list_test_all2.txt"]] == [1]


def test_duplicate_formats_keep_wav(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "wav/id10001/v/00001.wav": _wav(),
            "wav/id10001/v/00001.flac": _wav(fmt="FLAC"),
            "wav/id10001/v/00002.flac": _wav(fmt="FLAC"),
        },
    )
    scan = scan_corpus(Storage(str(root)), CFG)
    assert [u.path for u in scan.utterances] == [
        "wav/id10001/v/00001.wav",
        "wav/id10001/v/00002.flac",
    ]
    assert [q.reason for q in scan.quarantine] == [
        "wav/id10001/v/00001.flac: duplicate of wav/id10001/v/00001.wav (utterance id10001/v/00001)"
    ]


def test_scan_vox2(tmp_path: Path) -> None:
    meta = (
        "VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 ,n000012 ,m ,dev \nid00015 ,n000015 ,f "
        ",test \n"
    )
    root = _tree(
        tmp_path,
        {
            "dev/aac/id00012/21Uxsk56VDQ/00001.m4a": b"aac",
            "dev/aac/id00012/21Uxsk56VDQ/00002.m4a": b"aac",
            "test/aac/id00015/0fijmz4vTVU/00001.m4a": b"aac",
            "test/aac/id00017/1mJiYEcZ3nU/00001.m4a": b"aac",
            "dev/wav/id00018/9mQ11vBs1wc/00001.wav": _wav(),
            "dev/aac/id00012/21Uxsk56VDQ.m4a": b"aac",
            "dev/mp3/id00012/21Uxsk56VDQ/00003.mp3": b"mp3",
            "vox2_meta.csv": meta,
        },
    )
    scan = scan_corpus(Storage(str(root)), CFG)
    assert scan.layout == "vox2"
    assert [(u.utt_id, u.ext) for u in scan.utterances] == [
        ("id00012/21Uxsk56VDQ/00001", ".m4a"),
        ("id00012/21Uxsk56VDQ/00002", ".m4a"),
        ("id00015/0fijmz4vTVU/00001", ".m4a"),
        ("id00017/1mJiYEcZ3nU/00001", ".m4a"),
        ("id00018/9mQ11vBs1wc/00001", ".wav"),
    ]
    assert {q.path: q.reason for q in scan.quarantine} == {
        "dev/aac/id00012/21Uxsk56VDQ.m4a": "dev/aac/id00012/21Uxsk56VDQ.m4a: not at "
        "dev/aac/<speaker>/<video>/<file> (2 levels below dev/aac/)",
        "dev/mp3/id00012/21Uxsk56VDQ/00003.mp3": "dev/mp3/id00012/21Uxsk56VDQ/00003.mp3: not under "
        "{dev,test}/{aac,wav,flac}/",
    }
    # metadata first; id00017 has no row but lives under test/; id00018 has neither
    assert scan.split_of == {
        "id00012": "train",
        "id00015": "test",
        "id00017": "test",
        "id00018": "train",
    }


def test_no_corpus(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(CorpusError, match=f"no audio under {tmp_path}"):
        scan_corpus(Storage(str(tmp_path)), CFG)


def _utts(n_speakers: int, per: int) -> list[Utterance]:
    return [
        Utterance(
            f"id1{s:04d}/v/{k:05d}", f"id1{s:04d}", "v", f"wav/id1{s:04d}/v/{k:05d}.wav", ".wav"
        )
        for s in range(n_speakers)
        for k in range(per)
    ]


def test_subset_keeps_trial_utterances_when_they_fit() -> None:
    utts = _utts(10, 10)
    trials = {
        "veri_test2.txt": [
            Trial("veri_test2.txt", 1, "id10000/v/00000", "id10000/v/00001", 1),
            Trial("veri_test2.txt", 0, "id10000/v/00000", "id10009/v/00009", 2),
        ]
    }
    kept, kept_trials = subset_utterances(utts, trials, 20)
    ids = [u.utt_id for u in kept]
    assert len(ids) == 20 and ids == sorted(ids)
    assert {"id10000/v/00000", "id10000/v/00001", "id10009/v/00009"} <= set(ids)
    assert kept_trials == trials
    again, _ = subset_utterances(list(reversed(utts)), trials, 20)
    assert again == kept  # by hash of the id, not by order


def test_subset_when_trials_do_not_fit() -> None:
    utts = _utts(4, 25)
    ids = [u.utt_id for u in utts]
    trials = {
        "veri_test2.txt": [
            Trial("veri_test2.txt", i % 2, ids[i], ids[(i * 7 + 3) % 100], i + 1)
            for i in range(100)
        ]
    }
    kept, kept_trials = subset_utterances(utts, trials, 30)
    keep = {u.utt_id for u in kept}
    assert len(keep) == 30
    survivors = kept_trials["veri_test2.txt"]
    assert survivors and all(t.utt_a in keep and t.utt_b in keep for t in survivors)
    # whole trials were packed: at least 30 / 2 trials survive (each adds at most two utterances)
    assert len(survivors) >= 15


def test_scan_with_max_utterances(tmp_path: Path) -> None:
    root = _vox1(tmp_path)
    scan = scan_corpus(Storage(str(root)), CorpusConfig(max_utterances=4))
    ids = {u.utt_id for u in scan.utterances}
    assert len(ids) == 4
    # the three utterances named by surviving veri_test2 trials always stay
    assert {
        "id10002/vidB1xxxxxx/00001",
        "id10002/vidB2xxxxxx/00001",
        "id10003/vidC1xxxxxx/00001",
    } <= ids
    assert len(scan.trials["veri_test2.txt"]) == 2
    assert set(scan.split_of) == {u.speaker_id for u in scan.utterances}


def test_metadata_not_in_utf8_is_still_read(tmp_path: Path) -> None:
    root = _vox1(tmp_path)
    (root / "vox1_meta.csv").write_bytes(META.replace("Ada_One", "Zo\u00eb_One").encode("latin-1"))
    scan = scan_corpus(Storage(str(root)), CFG)
    assert scan.meta["id10001"].gender == "f" and scan.split_of["id10001"] == "train"
