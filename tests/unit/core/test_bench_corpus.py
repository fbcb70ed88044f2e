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


def test_a_size_that_is_not_a_multiple_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="multiples"):
        synth(tmp_path / "c", 20, utts_per_video=2, max_synth=12)
