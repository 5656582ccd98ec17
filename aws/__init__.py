"""AWS adapters: the only package that imports boto3. Implements services.ports with IAM."""

from aws.credentials import IamCredentials
from aws.directory import IamUserIndex
from aws.iam import IamAccess
from aws.session import aws_credentials_problem, make_iam_client

__all__ = ["IamAccess", "IamCredentials", "IamUserIndex", "aws_credentials_problem",
           "make_iam_client"]
