"""A real S3 API on 127.0.0.1 for the S3 source's tests: moto in server mode (``python -m moto.server``),
a separate process speaking the S3 wire protocol, so boto3 runs its real HTTP, signing and paging code.

``s3_server`` is started once per session; ``MotoServer`` starts a private one a test may stop.
Import the fixtures into a test module with ``from s3_server import s3_bucket, s3_server  # noqa: F401``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mmrag.pipeline.bench.moto import MotoServer

# moto accepts any key pair; these are what the tests' own clients and configs use
ACCESS_KEY = "test"
SECRET_KEY = "secret-key-xyz"
REGION = "us-east-1"


def client(endpoint: str) -> Any:
    """A plain boto3 client for the test to arrange objects with (not the code under test)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server shared by the session."""
    server = MotoServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[tuple[str, str, Any]]:
    """A fresh, empty bucket: ``(endpoint, bucket, boto3 client)``."""
    bucket = f"mmrag-{uuid.uuid4().hex[:12]}"
    s3 = client(s3_server)
    s3.create_bucket(Bucket=bucket)
    try:
        yield s3_server, bucket, s3
    finally:
        s3.close()
