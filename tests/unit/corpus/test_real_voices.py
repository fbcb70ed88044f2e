"""``voxray real-corpus``: a VoxCeleb1-layout corpus from Asterisk voice prompts. On a fake
sounds tree (always): speakers from folder names and the legacy table, families as videos,
trials across videos, 8 kHz doubled to 16 kHz, and the corpus scan accepts what it wrote. On
the installed Debian packages (skipped without them): every speaker the folders name."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxray.config import CorpusConfig
from voxray.corpus.layout import scan_corpus
from voxray.corpus.real_voices import (
    SOUNDS,
    build_real_corpus,
    family,
    find_voices,
    iden_lines,
    veri_lines,
)
from voxray.io.storage import Storage

PROMPTS = ("vm-intro", "vm-goodbye", "vm-options", "conf-locked", "conf-kicked", "conf-muted")


def _prompt(path: Path, seconds: float, f0: float) -> None:
    t = np.arange(int(seconds * 8000)) / 8000
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * f0 * t), 8000, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue())


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    for folder, f0 in (("en_US_f_Ann", 210.0), ("es_MX_f_Ann", 215.0), ("it_IT_m_Bob", 110.0)):
        for name in PROMPTS:
            _prompt(root / folder / f"{name}.wav", 2.0, f0)
        _prompt(root / folder / "digits" / "1.wav", 0.4, f0)  # too short to keep
    (root / "fr").mkdir()  # a legacy folder without its GSM files is not a voice
    return root


def test_find_voices_reads_the_folder_names(sounds: Path) -> None:
    voices = find_voices(str(sounds))
    assert [(v.folder, v.speaker, v.gender, v.language) for v in voices] == [
        ("en_US_f_Ann", "Ann", "f", "en-US"),
        ("es_MX_f_Ann", "Ann", "f", "es-MX"),
        ("it_IT_m_Bob", "Bob", "m", "it-IT"),
    ]
    assert family("en_US_f_Ann/vm-intro.wav", voices[0]) == "vm"
    assert family("en_US_f_Ann/digits/1.wav", voices[0]) == "digits"


def test_build_on_a_fake_tree(sounds: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    summary = build_real_corpus(str(out), str(sounds), videos=2, utts=2, min_seconds=1.0)
    assert summary.speakers == {"Ann": ["en_US_f_Ann", "es_MX_f_Ann"], "Bob": ["it_IT_m_Bob"]}
    wavs = sorted(p.relative_to(out / "wav").as_posix() for p in (out / "wav").rglob("*.wav"))
    # Ann: two packages x two families; Bob: two families; two prompts each
    assert len(wavs) == 12 and summary.utterances == 12
    assert {w.split("/")[1] for w in wavs if w.startswith("id90001/")} == {
        "en-US-conf",
        "en-US-vm",
        "es-MX-conf",
        "es-MX-vm",
    }
    x, sr = sf.read(str(out / "wav" / wavs[0]))
    assert sr == 16000 and x.size == 32000  # 2 s at 8 kHz, resampled
    meta = (out / "vox1_meta.csv").read_text().splitlines()
    assert meta[1:] == ["id90001\tAnn\tf\ten-US+es-MX\ttest", "id90002\tBob\tm\tit-IT\ttest"]
    trials = [ln.split() for ln in (out / "veri_test2.txt").read_text().splitlines()]
    assert {t[0] for t in trials} == {"0", "1"}
    for label, a, b in trials:
        same = a.split("/")[0] == b.split("/")[0]
        assert same == (label == "1")
        assert a.split("/")[1] != b.split("/")[1]  # trials never pair a video with itself
    scan = scan_corpus(Storage(str(out)), CorpusConfig())
    assert len(scan.utterances) == 12 and not scan.quarantine
    assert len(scan.trials["veri_test2.txt"]) == len(trials)
    assert set(scan.split_of.values()) == {"test"}
    with pytest.raises(FileExistsError, match="not empty"):
        build_real_corpus(str(out), str(sounds))


def test_trials_and_splits_by_video() -> None:
    utt_video = {f"s{s}/v{v}/{u:05d}": f"v{v}" for s in (1, 2) for v in (1, 2, 3) for u in (1, 2)}
    lines = veri_lines(utt_video, seed=0, per_side=2)
    pairs = [frozenset((a, b)) for _, a, b in lines]
    assert len(pairs) == len(set(pairs))  # no pair twice
    # near balance: a late utterance may find its same-speaker pairs already listed
    assert 0.4 <= sum(label for label, _, _ in lines) / len(lines) <= 0.5
    split = dict((u, s) for s, u in iden_lines(utt_video))
    assert split["s1/v3/00001"] == 3 and split["s1/v2/00002"] == 2 and split["s2/v1/00001"] == 1


def test_too_few_voices(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="need 2 speakers or more"):
        build_real_corpus(str(tmp_path / "c"), str(tmp_path / "nothing"))


def test_installed_packages(tmp_path: Path) -> None:
    voices = find_voices(SOUNDS)
    if len({v.speaker for v in voices}) < 2:
        pytest.skip(f"fewer than two Asterisk voices installed under {SOUNDS}")
    out = tmp_path / "real"
    summary = build_real_corpus(str(out), videos=2, utts=2)
    assert set(summary.speakers) == {v.speaker for v in voices}
    scan = scan_corpus(Storage(str(out)), CorpusConfig())
    assert not scan.quarantine and len(scan.utterances) == summary.utterances
    genders = {m.gender for m in scan.meta.values()}
    assert genders <= {"m", "f"} and len(scan.meta) == len(summary.speakers)
