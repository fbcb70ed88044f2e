"""`ray job submit` entrypoint: retrain the model on each masked condition with Ray Train and embed
clean and masked test data.

    ray job submit --working-dir . -- python ray_jobs/retrain.py --config conf/retrain.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray retrain`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("retrain")
