"""The command line contract: help everywhere, config errors before any work, cluster.yaml valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from voxray.cli import build_parser, main
from voxray.pipeline.stages import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("command", ["synth-corpus", "run", *STAGE_NAMES])
def test_help_for_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text
    if command != "synth-corpus":
        assert (
            "--data-root" in text
            and "--profile" in text
            and "--model" in text
            and "key=value" in text
        )


def test_top_level_help_lists_every_stage() -> None:
    text = build_parser().format_help()
    for name in ("synth-corpus", "run", *STAGE_NAMES):
        assert name in text


def test_console_script_installed() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "voxray"), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "features" in proc.stdout


def test_unknown_key_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["run", "--data-root", str(tmp_path), "--out", str(out), "train.epochz=3"])
    assert code == 2
    assert "unknown config key train.epochz" in capsys.readouterr().err
    assert not out.exists()


def test_missing_out_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "--data-root", str(tmp_path)]) == 2
    assert "out: an output folder is required" in capsys.readouterr().err


def test_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--print-config", "--profile", "smoke", "train.epochs=5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["profile"] == "smoke" and cfg["train"]["epochs"] == 5


def _printed(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["evaluate", "--print-config", *args]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_a_pretrained_model_without_a_profile_takes_the_cpu_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--model with no --profile adds conf/pretrained.yaml over base.yaml; a profile, or no
    --model, leaves it out; an override still wins."""
    base = _printed(capsys)
    own = _printed(capsys, "--model", "resemblyzer", "eval.faithfulness.steps=3")
    assert base["eval"]["xai"]["correlation_runs"] == 100 and base["attribution"]["ig_steps"] == 50
    assert own["eval"]["xai"]["correlation_runs"] == 10 and own["attribution"]["ig_steps"] == 16
    assert own["eval"]["faithfulness"] == {
        **base["eval"]["faithfulness"],
        "max_utterances": 8,
        "steps": 3,
    }
    assert own["attribution"]["methods"] == base["attribution"]["methods"]  # left out at run time
    smoke = _printed(capsys, "--model", "resemblyzer", "--profile", "smoke")
    assert smoke["eval"]["faithfulness"]["max_utterances"] == 4  # smoke's, not pretrained.yaml's


def test_cluster_yaml_is_a_valid_launcher_config() -> None:
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    gpu_groups = [
        n for n, t in cfg["available_node_types"].items() if t["resources"].get("GPU", 0) >= 1
    ]
    assert gpu_groups, "a GPU worker group is required"
    assert any("pip install" in c and "voxray" in c for c in cfg["setup_commands"]), (
        "the project is installed on start"
    )
    starts = cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c), (
        "token authentication on every node"
    )
    assert any("--dashboard-host=127.0.0.1" in c for c in cfg["head_start_ray_commands"])
    assert "auth_token" in " ".join(cfg["file_mounts"]), "the shared token reaches every node"


@pytest.mark.parametrize("stage", ["run", *STAGE_NAMES])
def test_ray_job_entrypoints_exist(stage: str) -> None:
    text = (ROOT / "ray_jobs" / f"{stage}.py").read_text()
    assert f'run_job("{stage}")' in text and "ray job submit" in text


def _tiny_corpus(root: Path) -> Path:
    """Four 1 s utterances of two speakers, one empty file, one trial list (no espeak)."""
    import numpy as np
    import soundfile as sf

    tone = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for speaker in ("id10001", "id10002"):
        for video in ("vidA", "vidB"):
            (root / "wav" / speaker / video).mkdir(parents=True)
            sf.write(root / "wav" / speaker / video / "00001.wav", tone, 16000)
    (root / "wav" / "id10002" / "vidB" / "00002.wav").write_bytes(b"")
    (root / "veri_test2.txt").write_text(
        "1 id10001/vidA/00001.wav id10001/vidB/00001.wav\n"
        "0 id10001/vidA/00001.wav id10002/vidB/00002.wav\n"
    )
    return root


def test_manifest_on_a_local_corpus_runs_without_ray_or_torch(tmp_path: Path) -> None:
    """The command's fixed cost: neither Ray (started or imported) nor torch for the manifest
    of a local corpus; the headers are probed in the process, the bad file quarantined."""
    import pyarrow.parquet as pq

    corpus, out = _tiny_corpus(tmp_path / "corpus"), tmp_path / "out"
    script = (
        "import sys\n"
        "from voxray.cli import main\n"
        f"code = main(['manifest', '--data-root', {str(corpus)!r}, '--out', {str(out)!r}])\n"
        "print(code, sorted(m for m in ('ray', 'torch', 'captum') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stderr[-2000:]
    assert pq.read_table(out / "manifest.parquet").num_rows == 4
    assert pq.read_table(out / "trials.parquet").num_rows == 1  # the other names the bad file
    quarantine = pq.read_table(out / "quarantine.parquet")
    assert sorted(quarantine.column("path").to_pylist()) == [
        "veri_test2.txt:2",
        "wav/id10002/vidB/00002.wav",
    ]
    assert "stage manifest: 5/5 rows (100%)" in proc.stderr
