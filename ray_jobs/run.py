"""`ray job submit` entrypoint: every stage in order, skipping complete ones.

    ray job submit --working-dir . -- python ray_jobs/run.py --config conf/run.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray run`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("run")
