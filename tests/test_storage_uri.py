"""A study whose --storage-path is an S3 URI (issue 12): Tune's experiment, the caches and the study's files go to the
bucket, and a second machine (another --local-dir, empty) finds the dense fine-tune and the head importance there
instead of computing them again.

The bucket is served by moto's S3 server on 127.0.0.1 (``s3://...?endpoint_override=host:port&scheme=http``, as
for MinIO); pyarrow and Ray Tune talk to it over HTTP as they would to S3.
"""

import hashlib
import json
import logging

import pytest
from mlflow.tracking import MlflowClient

from search.cli.study_command import main

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture
def bucket(monkeypatch):
    """``(uri, s3 client)`` of an empty bucket ``tickets`` on a local S3 server, prefix ``studies``."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log is not the CLI's output
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        client.create_bucket(Bucket="tickets")
        yield f"s3://tickets/studies?endpoint_override={host}:{port}&scheme=http", client
    finally:
        server.stop()


def _objects(client) -> dict[str, bytes]:
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="tickets")
            for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket="tickets", Key=key)["Body"].read() for key in keys}


def test_a_study_on_a_storage_uri_keeps_its_caches_there_and_another_machine_reuses_them(bucket, tmp_path, capsys,
                                                                                       model_dir, glue_dir):
    uri, client = bucket
    mlflow_uri = f"sqlite:///{tmp_path}/mlflow.db"

    def study(name, local):
        return main(["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir,
                     "--storage-path", uri, "--local-dir", str(tmp_path / local), "--mlflow-uri", mlflow_uri,
                     "--max-train-examples", "32", "--max-dev-examples", "32", "--max-seq-length", "32", "--epochs",
                     "1", "--seeds", "1", "--search", "grid", "--num-trials", "2", "--concurrent-trials", "1",
                     "--study-name", name])

    assert study("first", "machine-a") == 0
    stored = _objects(client)
    dense = [k for k in stored if k.startswith("studies/cache/dense/") and k.endswith("/record.json")]
    importance = [k for k in stored if k.startswith("studies/cache/importance/") and k.endswith("/record.json")]
    assert len(dense) == 1 and len(importance) == 1
    for record in (dense[0], importance[0]):  # every file an entry's record lists was uploaded, byte for byte
        folder = record.rsplit("/", 1)[0]
        for name, expected in json.loads(stored[record])["checksums"].items():
            assert hashlib.sha256(stored[f"{folder}/{name}"]).hexdigest() == expected["sha256"]
    assert len([k for k in stored if k.startswith("studies/cache/masks/") and "mask-seed-0" in k]) == 2
    for name in ("supertickets.json", "summary.json", "phase_transition.png", "progress.csv"):  # the study's files
        assert f"studies/first/{name}" in stored
    assert any(k.startswith("studies/first/experiment_state") for k in stored)  # Ray Tune's own, for --resume
    assert not list((tmp_path / "machine-a").rglob(".partial-*"))

    capsys.readouterr()
    assert study("first", "machine-c") == 2  # from a fresh machine, the study's state is found in the bucket
    assert "study first exists under" in capsys.readouterr().err and (tmp_path / "machine-c").is_dir()
    assert study("second", "machine-b") == 0  # another machine: nothing of the first study on its disk
    mlflow = MlflowClient(mlflow_uri)
    runs = mlflow.search_runs([mlflow.get_experiment_by_name("supertickets-rte").experiment_id])
    parent = next(r.info.run_id for r in runs if r.data.tags.get("supertickets.study") == "second")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert "): reused from cache; final train loss" in capsys.readouterr().out  # the dense fine-tune of seed 0
    for entry in (dense[0], importance[0]):  # downloaded, not computed again: the same record, seconds included
        local = tmp_path / "machine-b" / "cache" / entry.split("/cache/", 1)[1]
        assert local.read_bytes() == stored[entry]
    assert len([k for k in _objects(client) if k.startswith("studies/cache/dense/") and k.endswith("record.json")]) == 1


def test_a_storage_uri_whose_bucket_does_not_exist_is_refused_in_one_line(bucket, tmp_path, capsys, model_dir,
                                                                           glue_dir):
    uri, _ = bucket
    missing = uri.replace("s3://tickets/", "s3://no-such-bucket/")
    assert main(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--storage-path", missing,
                 "--local-dir", str(tmp_path / "local"), "--mlflow-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-bucket does not exist there: create the bucket first" in err
    assert not (tmp_path / "local").exists() and not (tmp_path / "mlflow.db").exists()
