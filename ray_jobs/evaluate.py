"""`ray job submit` entrypoint: scores and metrics (EER, minDCF, clustering scorers, faithfulness,
multi-speaker, sanity checks, gender flipping): scores/, metrics/, curves/.

    ray job submit --working-dir . -- python ray_jobs/evaluate.py --config conf/evaluate.yaml \
        --data-root s3://bucket/voxceleb1 --out s3://bucket/voxray-out [key=value ...]

Takes the same options as `voxray evaluate`; Ray is joined through the address the job
server provides (RAY_ADDRESS), so the stage runs on the cluster.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("evaluate")
