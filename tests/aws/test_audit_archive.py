"""aws/audit_archive.py against moto: one object per day, with its SHA-256 checksum."""

import base64
import hashlib

import boto3
import pytest
from moto import mock_aws

from accessbot.aws.audit_archive import make_audit_archive
from accessbot.services.ports import ProviderError


@pytest.fixture
def s3(aws_env):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="acme-evidence", ObjectLockEnabledForBucket=True)
        yield client


def test_a_day_is_stored_as_json_lines_with_its_checksum(s3):
    body = b'{"seq":1}\n{"seq":2}\n'
    make_audit_archive("acme-evidence").put("accessbot/audit/2026/11/28.jsonl", body)
    stored = s3.get_object(Bucket="acme-evidence", Key="accessbot/audit/2026/11/28.jsonl",
                           ChecksumMode="ENABLED")
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "application/x-ndjson"
    assert stored["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_a_missing_bucket_is_a_permanent_error(s3):
    with pytest.raises(ProviderError, match="NoSuchBucket") as refused:
        make_audit_archive("no-such-bucket").put("accessbot/audit/2026/11/28.jsonl", b"")
    assert refused.value.retryable is False
