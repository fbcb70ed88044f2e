"""Fixtures for the fault-injection suite: a tiny generated corpus, shared by the module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("tiny") / "corpus"
    synth_corpus(str(root), speakers=6, videos=2, utts=2, seed=11, test_speakers=2, jobs=2)
    return root
