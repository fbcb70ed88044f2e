"""`ray job submit` entrypoint: scan the corpus (local or s3://), probe every file, parse the trial
lists: manifest.parquet, trials.parquet, quarantine.parquet.

The options of `voxray manifest`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("manifest")
