"""What does a bucket as ``--storage-path`` cost? Prints measured figures.

    python -m benchmarks.storage_uri [--model DIR] [--glue-dir DIR] [--train-examples 32]

Runs the same small RTE study three times: on a folder; on an S3 bucket (``s3://...?endpoint_override=...``, served
by moto's S3 server on this machine, as MinIO would be); and on the same bucket from an empty ``--local-dir``, as a
second machine would, which downloads the dense fine-tune and the importance scores instead of computing them. It
prints each study's wall time and what the bucket holds afterwards, by kind. A server on the same machine measures
the project's own overhead, not a cloud bucket's bandwidth. Needs the test extra (``pip install -e ".[test]"``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main(argv: list[str] | None = None) -> int:
    """Run the three studies and print the figures; returns the exit code (0 done, 2 bad input: one line on
    stderr)."""
    from search.cli.preflight import check_model_and_data

    parser = OneLineParser(prog="python -m benchmarks.storage_uri", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    parser.add_argument("--train-examples", type=int, default=32, help="RTE training examples (default 32)")
    try:
        args = parser.parse_args(argv)
        if args.train_examples < 1:  # 0 would be every example: not the small study this measures
            raise UsageError(f"--train-examples {args.train_examples} must be at least 1")
        check_model_and_data(args.model, args.glue_dir, ("rte",))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in {"AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import boto3
    from moto.server import ThreadedMotoServer

    from search.cli.study_command import main as study

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="tickets")
        uri = f"s3://tickets/studies?endpoint_override={host}:{port}&scheme=http"
        scratch = tempfile.mkdtemp(prefix="storage-uri-")
        common = ["--task", "rte", "--budget", "smoke", "--model", args.model, "--glue-dir", args.glue_dir,
                  "--max-train-examples", str(args.train_examples), "--max-dev-examples", "32", "--max-seq-length",
                  "32", "--epochs", "1", "--seeds", "1", "--search", "grid", "--num-trials", "2",
                  "--concurrent-trials", "1", "--mlflow-uri", f"sqlite:///{scratch}/mlflow.db"]
        runs = {"folder": ["--storage-path", f"{scratch}/folder"],
                "bucket": ["--storage-path", uri, "--local-dir", f"{scratch}/machine-a"],
                "bucket, another machine": ["--storage-path", uri, "--local-dir", f"{scratch}/machine-b"]}
        seconds = {}
        for index, (label, flags) in enumerate(runs.items()):
            started = time.perf_counter()
            if study([*common, *flags, "--study-name", f"study-{index}"]) != 0:
                raise SystemExit(f"the {label} study failed")
            seconds[label] = time.perf_counter() - started
        objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket="tickets")
                   for o in page.get("Contents", [])]
    finally:
        server.stop()

    def stored(prefix: str) -> int:
        return sum(o["Size"] for o in objects if o["Key"].startswith(f"studies/{prefix}"))

    print(f"\nRTE, {args.train_examples} training examples, 2 trials, {Path(args.model).name}; S3 served on this "
          "machine by moto")
    print("| storage | study wall time |\n|---|---|")
    for label, value in seconds.items():
        print(f"| {label} | {value:.1f} s |")
    print("\n| in the bucket | bytes |\n|---|---|")
    for label, prefix in (("dense fine-tune (cache/dense)", "cache/dense"),
                          ("head importance (cache/importance)", "cache/importance"),
                          ("trial masks (cache/masks)", "cache/masks"),
                          ("one study's files and Tune's folder", "study-1/"), ("everything", "")):
        print(f"| {label} | {stored(prefix):,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
