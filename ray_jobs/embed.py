"""`ray job submit` entrypoint: full-utterance and overlapping-segment embeddings on an actor pool:
embeddings/.

    ray job submit --working-dir . -- python ray_jobs/embed.py --config conf/embed.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray embed`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("embed")
