"""AWS adapters: the only package that imports boto3. Implements services.ports with IAM
and IAM Identity Center."""

from accessbot.aws.accounts import IamByAccount
from accessbot.aws.credentials import IamCredentials
from accessbot.aws.directory import IamUserIndex
from accessbot.aws.iam import IamAccess
from accessbot.aws.identity_center import IdentityCenter, make_identity_center
from accessbot.aws.providers import ByKind
from accessbot.aws.session import aws_credentials_problem, make_iam_client

__all__ = ["ByKind", "IamAccess", "IamByAccount", "IamCredentials", "IamUserIndex",
           "IdentityCenter", "aws_credentials_problem", "make_iam_client",
           "make_identity_center"]
