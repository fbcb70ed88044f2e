"""Fixtures for the multi-node tests: a LocalCluster (voxray.testing.cluster) and a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from voxray.testing.cluster import LocalCluster


@pytest.fixture
def two_workers() -> Iterator[LocalCluster]:
    c = LocalCluster(2)
    yield c
    c.shutdown()


@pytest.fixture(scope="session")
def cluster_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke test's corpus shape, smaller: 6 speakers (2 held out) x 2 videos x 2."""
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("cluster") / "corpus"
    synth_corpus(str(root), speakers=6, videos=2, utts=2, seed=11, test_speakers=2, jobs=2)
    return root
