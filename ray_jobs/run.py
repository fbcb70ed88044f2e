"""`ray job submit` entrypoint: every stage in order, skipping complete ones.

The options of `voxray run`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("run")
