"""Fixtures for aws/: an in-process moto IAM with fake credentials."""

from collections.abc import Iterator

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from accessbot.aws.session import make_iam_client


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no endpoint override, so moto intercepts every call."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def iam(aws_env: None) -> Iterator[BaseClient]:
    """The client the adapters get, from aws.session, against moto."""
    with mock_aws():
        yield make_iam_client()


@pytest.fixture
def admin(iam: BaseClient) -> BaseClient:
    """A separate plain boto3 client, to set up and read back IAM state independently."""
    return boto3.client("iam", region_name="us-east-1")
