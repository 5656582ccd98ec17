"""services.ports.AuditArchive on S3: one object per day of the audit trail.

The bot's policy needs s3:PutObject on arn:aws:s3:::BUCKET/PREFIX* (iam-policy.json,
Sid AuditArchive). With S3 Object Lock on the bucket (README), a day's file cannot be
changed or deleted by anyone, the bot included, for the retention period.
"""

import base64
import hashlib

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.iam import provider_error
from accessbot.aws.session import make_client

# refused for good: a retry cannot fix a missing bucket or a missing permission
PERMANENT = frozenset({"NoSuchBucket", "AccessDenied", "InvalidBucketName",
                       "AllAccessDisabled", "InvalidRequest"})


class S3AuditArchive:
    def __init__(self, client: BaseClient, bucket: str):
        self._s3 = client
        self._bucket = bucket

    def put(self, key: str, body: bytes) -> None:
        # Object Lock buckets require a checksum on every PUT: SHA-256 (instead of
        # Content-MD5), computed here so that S3 checks what arrived against it
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body,
                                ContentType="application/x-ndjson",
                                ChecksumAlgorithm="SHA256", ChecksumSHA256=digest)
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, f"storing s3://{self._bucket}/{key}", "AWS S3",
                                 PERMANENT) from None


def make_audit_archive(bucket: str) -> S3AuditArchive:
    return S3AuditArchive(make_client("s3", connections=2), bucket)
