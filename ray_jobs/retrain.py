"""`ray job submit` entrypoint: retrain the model on each masked condition with Ray Train and embed
clean and masked test data.

The options of `voxray retrain`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("retrain")
