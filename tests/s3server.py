"""A real S3-compatible server on loopback for tests: moto's, answering the S3 API over HTTP."""

from __future__ import annotations

import secrets
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto takes any credentials; these are given in the settings, as an operator of MinIO would.
ACCESS_KEY, SECRET_KEY = "watchkeeper-test", "watchkeeper-test-secret"


class S3Server:
    """``with S3Server() as s3:`` serves on 127.0.0.1 in a thread; ``s3.new_bucket()`` for each test."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> S3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def new_bucket(self) -> str:
        name = f"wk-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, **s3: Any) -> dict[str, Any]:
        """The ``artefacts`` settings block for this server's ``bucket``."""
        return {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": self.url, "region": REGION,
                                        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
                                        "addressing_style": "path", **s3}}
