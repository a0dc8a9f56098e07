"""Local object stores for tests: Google Cloud Storage (``gcp-storage-emulator``) and S3
(``moto`` server), both on 127.0.0.1 only.  Each yields the environment a process (and
Beam's SDK worker processes, which inherit it) needs to reach the store."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception as e:  # noqa: BLE001 - any answer (even an HTTP error) means it is up
            if hasattr(e, "code"):
                return
            time.sleep(0.2)
    raise RuntimeError(f"emulator at {url} did not start")


@contextlib.contextmanager
def _serving(cmd: list[str], url: str):
    """A local server process for the duration of the block (stopped, then killed if need be)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(url, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def gcs_emulator(tmp: Path, bucket: str = "llama-test"):
    """``gcp-storage-emulator`` in memory, with a fake non-expiring credential so that
    google-auth never retries or probes a metadata server."""
    port = free_port()
    creds = tmp / "fake-adc.json"
    creds.write_text(json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "x",
                                 "refresh_token": "x", "token": "x", "expiry": "2999-01-01T00:00:00Z"}))
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "GOOGLE_APPLICATION_CREDENTIALS": str(creds), "GOOGLE_CLOUD_PROJECT": "llama-test",
           "NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9"}
    with _serving([str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
                   "--in-memory", "--default-bucket", bucket], f"http://127.0.0.1:{port}/storage/v1/b"):
        yield env


@contextlib.contextmanager
def s3_server(bucket: str = "llama-test"):
    port = free_port()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    with _serving([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/"):
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket=bucket)
        yield env


@contextlib.contextmanager
def environ(env: dict):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def upload_tree(local: Path, dest: str) -> None:
    """Copy a local file or directory (following symlinks) to a remote prefix."""
    from core import fs

    local = Path(local)
    files = [local] if local.is_file() else [p for p in sorted(local.rglob("*")) if p.is_file()]
    for f in files:
        rel = f.name if f == local else str(f.relative_to(local))
        fs.copy_file(str(f), fs.join(dest, rel))
