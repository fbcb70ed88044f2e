"""`ray job submit` entrypoint: full-utterance and overlapping-segment embeddings on an actor pool:
embeddings/.

The options of `voxray embed`; how to submit it: ``voxray.cli.run_job``.
"""

from voxray.cli import run_job

if __name__ == "__main__":
    run_job("embed")
