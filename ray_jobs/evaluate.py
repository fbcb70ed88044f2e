"""`ray job submit` entrypoint: scores and metrics (EER, minDCF, clustering scorers, faithfulness,
multi-speaker, sanity checks, gender flipping): scores/, metrics/, curves/.

The options of `voxray evaluate`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("evaluate")
