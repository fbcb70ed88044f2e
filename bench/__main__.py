"""Run one benchmark or all of them: ``python -m bench <name>|all [--quick]``."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

BENCHMARKS = ("fixed_cost", "features", "embed", "attribute", "trial", "mask", "train", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=(*BENCHMARKS, "all"))
    parser.add_argument("--quick", action="store_true", help="small inputs: minutes, not hours")
    args, rest = parser.parse_known_args(argv)
    names = BENCHMARKS if args.name == "all" else (args.name,)
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        if args.name == "all":
            # each benchmark in its own process, so peak-memory figures do not mix
            cmd = [
                sys.executable,
                "-m",
                f"bench.{name}",
                *(["--quick"] if args.quick else []),
                *rest,
            ]
            if subprocess.run(cmd).returncode != 0:
                failed.append(name)
        else:
            importlib.import_module(f"bench.{name}").main(
                [*(["--quick"] if args.quick else []), *rest]
            )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
