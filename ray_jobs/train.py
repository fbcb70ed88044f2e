"""`ray job submit` entrypoint: train the speaker model (ECAPA-TDNN by default) on the training
speakers with Ray Train: models/<name>/.

    ray job submit --working-dir . -- python ray_jobs/train.py --config conf/train.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray train`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("train")
