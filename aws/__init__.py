"""AWS adapters: the only package that imports boto3. Implements services.ports with IAM."""

from accessbot.aws.credentials import IamCredentials
from accessbot.aws.directory import IamUserIndex
from accessbot.aws.iam import IamAccess
from accessbot.aws.session import aws_credentials_problem, make_iam_client

__all__ = ["IamAccess", "IamCredentials", "IamUserIndex", "aws_credentials_problem",
           "make_iam_client"]
