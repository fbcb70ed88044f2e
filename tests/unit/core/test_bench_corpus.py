"""The benchmarks' large corpora repeat a synthesised corpus under new speaker ids: the
manifest must see every copy as its own utterance, with the same audio as the original."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.common import synth
from voxray.config import CorpusConfig
from voxray.corpus.layout import scan_corpus
from voxray.io.storage import Storage


def test_sizes_above_the_synthesised_corpus_repeat_it(tmp_path: Path) -> None:
    corpus = synth(tmp_path / "c", 36, utts_per_video=2, max_synth=12)
    files = sorted((corpus / "wav").rglob("*.wav"))
    assert len(files) == 36
    scan = scan_corpus(Storage(str(corpus)), CorpusConfig())
    assert len({u.utt_id for u in scan.utterances}) == 36
    assert len({u.speaker_id for u in scan.utterances}) == 9  # 3 synthesised speakers, 3 times
    assert sorted(Counter(f.stat().st_ino for f in files).values()) == [3] * 12


def test_a_size_past_a_multiple_repeats_part_of_the_corpus(tmp_path: Path) -> None:
    corpus = synth(tmp_path / "c", 20, utts_per_video=2, max_synth=12)
    files = sorted((corpus / "wav").rglob("*.wav"))
    assert len(files) == 20  # 12 synthesised, 8 of them again
    assert sorted(Counter(f.stat().st_ino for f in files).values()) == [1] * 4 + [2] * 8
    with pytest.raises(SystemExit, match="whole speakers"):
        synth(tmp_path / "d", 10, utts_per_video=2)


@pytest.mark.parametrize("audio", ["flac", "wav"])
def test_the_embed_benchmark_reads_files_of_two_to_three_seconds(tmp_path: Path, audio) -> None:
    """Every file cut and re-encoded, past the synthesised size too (hard links share it)."""
    import soundfile as sf

    from bench.embed import MAX_S, MIN_S, audio_files, cut_corpus

    corpus = cut_corpus(tmp_path / "c", 20, quick=True, audio=audio)
    files = audio_files(corpus)
    assert len(files) == 20 and {f.suffix for f in files} == {f".{audio}"}
    assert not list(corpus.rglob("*.cut"))
    durations = [sf.info(str(f)).duration for f in files]
    assert MIN_S <= min(durations) and max(durations) <= MAX_S
    scan = scan_corpus(Storage(str(corpus)), CorpusConfig())
    assert len(scan.utterances) == 20
