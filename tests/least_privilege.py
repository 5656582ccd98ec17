"""The bot's own least privilege: every AWS operation the suite makes through aws/ is
allowed by the shipped policies, and the policies allow nothing the code never calls.

aws/session.py counts every call its clients make (`accessbot_aws_calls_total`, with the
service and operation). At the end of a full run (`make test`: every test selected, all
passed) the operations counted in this process are compared with iam-policy.json and
deploy/iam-policy-identity-center.json; a difference fails the run. (The end-to-end bots
run in processes of their own; the in-process adapter tests call every operation.)
"""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
POLICIES = (ROOT / "iam-policy.json", ROOT / "deploy" / "iam-policy-identity-center.json")
MEMBER_ACCOUNT = ROOT / "deploy" / "member-account-role.yaml"  # CloudFormation
# Done by IAM Identity Center in the account when it assigns a permission set, on the
# caller's permissions: never called by accessbot itself.
FOR_IDENTITY_CENTER = "WhatIdentityCenterDoesInTheAccountOnAnAssignment"
PREFIX = {"iam": "iam", "sso-admin": "sso", "identitystore": "identitystore", "sts": "sts"}
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}


def allowed_actions() -> set[str]:
    """What the shipped policies allow: the bot's own, Identity Center's, and the role of
    the member-account template."""
    statements = [s for path in POLICIES for s in json.loads(path.read_text())["Statement"]]
    statements += member_account_statements()
    actions: set[str] = set()
    for statement in statements:
        if statement.get("Sid") != FOR_IDENTITY_CENTER:
            found = statement["Action"]
            actions |= {found} if isinstance(found, str) else set(found)
    return actions


def member_account_statements() -> list[dict]:
    """The statements of the member-account template's role, both sides of each Fn::If."""
    template = yaml.safe_load(MEMBER_ACCOUNT.read_text())
    found = []
    for policy in template["Resources"]["AccessbotRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            sides = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
            found += [side for side in sides if "Ref" not in side]  # AWS::NoValue
    return found


def called_actions() -> set[str]:
    from accessbot.services import metrics

    called = set()
    for family in metrics.AWS_CALLS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value > 0:
                labels = sample.labels
                called.add(f"{PREFIX.get(labels['service'], labels['service'])}:"
                           f"{labels['operation']}")
    return called - NEEDS_NO_PERMISSION


def differences(called: set[str]) -> list[str]:
    allowed = allowed_actions()
    said = [f"called but not in the policies: {a}" for a in sorted(called - allowed)]
    said += [f"allowed but never called: {a}" for a in sorted(allowed - called)]
    return said


def full_run(session) -> bool:
    """Every test of the suite selected (no -k, -m or paths), and every one passed."""
    options = session.config.option
    return (session.exitstatus == 0 and not options.keyword and not options.markexpr
            and session.config.args_source is not pytest.Config.ArgsSource.ARGS
            and session.testscollected > 0 and not session.config.option.deselect)
