"""`ray job submit` entrypoint: explanations of verification trials on an actor pool: attributions/
(pathway trial).

The options of `voxray trial`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("trial")
