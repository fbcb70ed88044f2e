"""`ray job submit` entrypoint: the self-contained HTML report: report/index.html.

The options of `voxray report`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("report")
