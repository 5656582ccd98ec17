"""Role hygiene on moto: the real adapter reads the roles, the runner decides, remembers and
tells, and the owner's click on "Cap at 1h" caps the role in IAM."""

import json

import pytest
from botocore.client import BaseClient
from sqlalchemy import select

from accessbot.aws.credentials import IamCredentials
from accessbot.aws.directory import IamUserIndex
from accessbot.models import CredentialFinding, FindingStatus
from accessbot.services.catalog import parse_catalog
from accessbot.services.hygiene import FindingKind
from accessbot.services.hygiene_runner import HygieneRunner
from tests.aws.test_hygiene_pipeline import Owners
from tests.conftest import CATALOG
from tests.fakes.hygiene import HygieneMail

OTHER = "999988887777"


def trust(principal) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def pipeline(iam: BaseClient, sessions):
    catalog = parse_catalog(CATALOG)
    index = IamUserIndex(iam)
    credentials = IamCredentials(iam, poll_interval=0.01)
    notifier = HygieneMail(sessions, catalog)
    runner = HygieneRunner(sessions, catalog, credentials, Owners(index, {}),
                           refresh_owners=index.refresh, roles=credentials)
    return runner, credentials, notifier


def test_long_session_found_told_and_capped_by_its_owner(pipeline, admin: BaseClient,
                                                         sessions):
    runner, credentials, notifier = pipeline
    admin.create_role(RoleName="ci", AssumeRolePolicyDocument=trust({"Service":
                                                                     "ec2.amazonaws.com"}),
                      MaxSessionDuration=43200,
                      Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    admin.create_role(RoleName="partner", AssumeRolePolicyDocument=trust({"AWS": OTHER}),
                      Tags=[{"Key": "owner", "Value": "C0PLATFORM"}])
    admin.create_role(RoleName="fine", AssumeRolePolicyDocument=trust({"AWS": OTHER}))
    admin.update_assume_role_policy(RoleName="fine", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": OTHER}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "agreed"}}}]}))

    result = runner.stale_credentials()

    assert (result["roles"], result["role_findings"]) == (3, 2)
    with sessions() as session:
        found = {(r.iam_user, r.kind): r for r in session.scalars(select(CredentialFinding))}
    assert set(found) == {("ci", FindingKind.ROLE_LONG_SESSION),
                          ("partner", FindingKind.ROLE_OPEN_TRUST)}
    ci = found[("ci", FindingKind.ROLE_LONG_SESSION)]
    assert ci.detail == "sessions of up to 12h"
    [digest] = notifier.of("digest", "U0ALICE")
    assert digest.ids == [ci.id]
    assert [s.ids for s in notifier.of("digest", "C0PLATFORM")] == [
        [found[("partner", FindingKind.ROLE_OPEN_TRUST)].id]]

    answer = runner.cap_session(ci.id, "U0ALICE", "DU0ALICE")

    assert answer == "Done: role ci now allows sessions of up to 1h."
    assert admin.get_role(RoleName="ci")["Role"]["MaxSessionDuration"] == 3600
    with sessions() as session:
        ci = session.get(CredentialFinding, ci.id)
    assert ci.status is FindingStatus.RESOLVED
    assert ci.resolution == "session capped at 1h by <@U0ALICE>"
    notifier.deliver()
    [update] = [s for s in notifier.sent if s.kind == "update"]
    assert update.detail[0] == digest.ts  # the DM, updated in place

    # the next run finds nothing long any more, and resolves nothing else
    notifier.sent.clear()
    result = runner.stale_credentials()
    assert result["role_findings"] == 1 and result["resolved"] == 0
