"""`ray job submit` entrypoint: scan the corpus (local or s3://), probe every file, parse the trial
lists: manifest.parquet, trials.parquet, quarantine.parquet.

    ray job submit --working-dir . -- python ray_jobs/manifest.py --config conf/manifest.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray manifest`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("manifest")
