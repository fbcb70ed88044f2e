"""Fixtures for the multi-node tests (clusters: voxray.testing.cluster.LocalCluster)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cluster_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke test's corpus shape, smaller: 6 speakers (2 held out) x 2 videos x 2."""
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("cluster") / "corpus"
    synth_corpus(str(root), speakers=6, videos=2, utts=2, seed=11, test_speakers=2, jobs=2)
    return root
