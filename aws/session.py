"""Builds the boto3 clients the adapters use, with bounded retries and timeouts."""

import os

import boto3
from botocore.client import BaseClient
from botocore.config import Config

DEFAULT_REGION = "us-east-1"

# Adaptive mode retries throttling and transient errors with backoff, and slows the
# client's own sending rate while AWS throttles (shared by every thread); the timeouts
# keep a dead endpoint from holding a worker for minutes. Callers retry later on
# ProviderError.
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "total_max_attempts": 3},  # first try + 2 retries
    connect_timeout=5,
    read_timeout=10,
    # the scheduler's and the background pool's threads share one client
    max_pool_connections=32,
)


def default_region() -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def make_iam_client(region: str | None = None) -> BaseClient:
    """An IAM client; boto3 itself honours AWS_ENDPOINT_URL (e.g. a moto server)."""
    return boto3.session.Session().client(
        "iam", region_name=region or default_region(), config=CLIENT_CONFIG
    )
