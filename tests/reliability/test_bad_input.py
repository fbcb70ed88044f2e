"""Bad input, every stage: each bad file or list line becomes a quarantine row with its reason,
every good utterance still comes out, and inputs = outputs + quarantined with no duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import soundfile as sf

from tests.support.pipeline import accounts_for_inputs, read, run_cli
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage

SMOKE = ["--profile", "smoke", "features.resources.concurrency=1"]


def _plant_bad_files(root: Path) -> dict[str, str]:
    """Write bad files into a copy of the corpus; returns path -> expected reason fragment."""
    spk = sorted(p.name for p in (root / "wav").iterdir())[0]
    d = root / "wav" / spk / "badvideo000"
    d.mkdir(parents=True)
    rate = 16000
    t = np.arange(rate * 2) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    bad = {}
    (d / "00001.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    bad["00001.wav"] = ""
    (d / "00002.wav").write_bytes(b"")
    bad["00002.wav"] = ""
    sf.write(d / "00003.wav", tone, 8000, subtype="PCM_16")
    bad["00003.wav"] = "8000"
    sf.write(d / "00004.wav", np.stack([tone, tone], 1), rate, subtype="PCM_16")
    bad["00004.wav"] = "mono"
    sf.write(d / "00005.wav", np.zeros_like(tone), rate, subtype="PCM_16")
    bad["00005.wav"] = "silent"
    nan = tone.copy()
    nan[100:200] = np.nan
    sf.write(d / "00006.wav", nan, rate, subtype="FLOAT")
    bad["00006.wav"] = ""
    sf.write(d / "00007.wav", tone, rate, subtype="PCM_16")
    data = (d / "00007.wav").read_bytes()
    (d / "00007.wav").write_bytes(data[: len(data) // 3])  # truncated: header promises more
    bad["00007.wav"] = ""
    return {f"wav/{spk}/badvideo000/{name}": why for name, why in bad.items()}


def test_bad_files_are_quarantined_and_nothing_else_is_lost(
    smoke_corpus: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_corpus, corpus)
    bad = _plant_bad_files(corpus)
    with open(corpus / "veri_test2.txt", "a") as f:
        f.write("1 only-one-field\n")
        f.write("x id1/v/00001.wav id2/v/00001.wav\n")
        f.write("1 ../../etc/passwd id2/v/00001.wav\n")
    out = tmp_path / "out"
    run_cli("manifest", "--data-root", str(corpus), "--out", str(out), *SMOKE)
    run_cli("features", "--data-root", str(corpus), "--out", str(out), *SMOKE)

    good = sorted(
        str(p.relative_to(corpus))
        for p in (corpus / "wav").rglob("*.wav")
        if str(p.relative_to(corpus)) not in bad
    )
    manifest = read(out, "manifest.parquet")
    quarantine = read(out, "quarantine.parquet").to_pylist()
    reasons = {q["path"]: q["reason"] for q in quarantine}
    for path, fragment in bad.items():
        assert path in reasons, f"{path} was not quarantined"
        assert fragment.lower() in reasons[path].lower(), (path, reasons[path])
        assert reasons[path].strip(), path
    list_rows = [q for q in quarantine if q["path"].startswith("veri_test2.txt")]
    assert len(list_rows) >= 3 and all("veri_test2.txt:" in q["reason"] for q in list_rows)
    assert any(".." in q["reason"] or "escape" in q["reason"].lower() for q in list_rows)

    feats = read(out, "features", ["utt_id", "kind"])
    fbank = feats.filter(pc.equal(feats.column("kind"), "fbank"))
    ok_ids = set(manifest.column("utt_id").to_pylist())
    assert len(ok_ids) == manifest.num_rows  # no duplicates
    assert sorted(manifest.column("path").to_pylist()) == sorted(
        set(manifest.column("path").to_pylist())
    )
    # every good file is in the manifest and has features; the bad ones are not
    assert {p for p in manifest.column("path").to_pylist()} >= set(good)
    feature_ids = set(fbank.column("utt_id").to_pylist())
    quarantined_at_features = {q["path"] for q in quarantine if q["stage"] == "features"}
    for u, p in zip(
        manifest.column("utt_id").to_pylist(), manifest.column("path").to_pylist(), strict=True
    ):
        assert (u in feature_ids) != (p in quarantined_at_features), (u, p)
    assert set(good) <= {
        p
        for u, p in zip(
            manifest.column("utt_id").to_pylist(), manifest.column("path").to_pylist(), strict=True
        )
        if u in feature_ids
    }
    assert fbank.num_rows == len(set(fbank.column("utt_id").to_pylist()))
    for stage in ("manifest", "features"):
        info = stage_info(Storage(str(out)), stage)
        assert accounts_for_inputs(info), info


def test_escaping_data_root_is_rejected(smoke_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_corpus, corpus)
    (corpus / "iden_split.txt").write_text(
        (corpus / "iden_split.txt").read_text() + "1 ../../../etc/shadow\n"
    )
    out = tmp_path / "out"
    run_cli("manifest", "--data-root", str(corpus), "--out", str(out), *SMOKE)
    assert not any("shadow" in p for p in read(out, "manifest.parquet").column("path").to_pylist())


def test_bad_config_fails_before_any_work(smoke_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = {
        "attribution.ig_stepz=3": "attribution.ig_stepz",
        "train.epochs=[1]": "train.epochs: expected an integer",
    }
    for override, named in bad.items():
        args = ("--data-root", str(smoke_corpus), "--out", str(out), "--profile", "smoke")
        proc = run_cli("run", *args, override, check=False)
        assert proc.returncode == 2 and named in proc.stderr, (override, proc.stderr[-2000:])
        assert not out.exists()


def test_missing_data_root_names_it(tmp_path: Path) -> None:
    proc = run_cli(
        "manifest",
        "--data-root",
        str(tmp_path / "nope"),
        "--out",
        str(tmp_path / "out"),
        *SMOKE,
        check=False,
    )
    assert proc.returncode != 0 and str(tmp_path / "nope") in proc.stderr
