"""`ray job submit` entrypoint: explanations of verification trials on an actor pool: attributions/
(pathway trial).

    ray job submit --working-dir . -- python ray_jobs/trial.py --config conf/trial.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray trial`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("trial")
