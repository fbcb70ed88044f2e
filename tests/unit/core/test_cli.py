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
