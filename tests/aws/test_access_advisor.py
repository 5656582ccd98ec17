"""The last-accessed adapter, with botocore's Stubber (moto has no access advisor) on
responses shaped as IAM's API reference gives them."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from accessbot.aws.access_advisor import POLL_EVERY, AccessAdvisor
from accessbot.aws.session import make_client
from accessbot.services.ports import ProviderError, ServiceUse

ARN = "arn:aws:iam::123456789012:group/ops"
JOB = "examplef-1305-c245-eba4-71fe298bcda7"
CREATED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Ticks:
    """A clock that moves only when the adapter sleeps."""

    def __init__(self):
        self.now, self.slept = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def iam():
    client = make_client("iam", connections=2)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def page(status: str, services: list[dict] | None = None, marker: str | None = None) -> dict:
    # JobCompletionDate is required by the service model even while the job runs
    response = {"JobStatus": status, "JobType": "SERVICE_LEVEL", "JobCreationDate": CREATED,
                "JobCompletionDate": CREATED + timedelta(seconds=3),
                "ServicesLastAccessed": services or [], "IsTruncated": marker is not None}
    if marker:
        response["Marker"] = marker
    return response


def service(namespace: str, name: str, last: datetime | None = None) -> dict:
    entry = {"ServiceName": name, "ServiceNamespace": namespace,
             "TotalAuthenticatedEntities": 1 if last else 0}
    if last:
        entry |= {"LastAuthenticated": last, "LastAuthenticatedEntity": ARN,
                  "LastAuthenticatedRegion": "us-east-1"}
    return entry


def expect_generate(stubber: Stubber) -> None:
    stubber.add_response("generate_service_last_accessed_details", {"JobId": JOB},
                         {"Arn": ARN, "Granularity": "SERVICE_LEVEL"})


def test_polls_until_completed_and_reads_every_page(iam):
    client, stubber = iam
    used = datetime(2026, 11, 30, 17, 5, tzinfo=timezone(timedelta(hours=2)))
    expect_generate(stubber)
    first = {"JobId": JOB, "MaxItems": 200}
    stubber.add_response("get_service_last_accessed_details", page("IN_PROGRESS"), first)
    stubber.add_response("get_service_last_accessed_details",
                         page("COMPLETED", [service("s3", "Amazon S3", used),
                                            service("ec2", "Amazon EC2")], marker="m1"), first)
    stubber.add_response("get_service_last_accessed_details",
                         page("COMPLETED", [service("logs", "Amazon CloudWatch Logs")]),
                         {"JobId": JOB, "MaxItems": 200, "Marker": "m1"})
    ticks = Ticks()

    uses = AccessAdvisor(client, ticks.sleep, ticks.clock).services(ARN)

    assert uses == [ServiceUse("s3", "Amazon S3", datetime(2026, 11, 30, 15, 5, tzinfo=UTC)),
                    ServiceUse("ec2", "Amazon EC2", None),
                    ServiceUse("logs", "Amazon CloudWatch Logs", None)]
    assert uses[0].last_accessed.tzinfo is UTC
    assert ticks.slept == [POLL_EVERY]


def test_a_failed_job_is_a_retryable_error_naming_the_principal(iam):
    client, stubber = iam
    expect_generate(stubber)
    failed = page("FAILED") | {"Error": {"Code": "InternalError", "Message": "try later"}}
    stubber.add_response("get_service_last_accessed_details", failed, {"JobId": JOB,
                                                                       "MaxItems": 200})
    with pytest.raises(ProviderError, match="group/ops.*InternalError") as raised:
        AccessAdvisor(client, Ticks().sleep, Ticks().clock).services(ARN)
    assert raised.value.retryable


def test_a_job_still_running_after_the_wait_is_given_up_for_now(iam):
    client, stubber = iam
    expect_generate(stubber)
    for _ in range(3):
        stubber.add_response("get_service_last_accessed_details", page("IN_PROGRESS"),
                             {"JobId": JOB, "MaxItems": 200})
    ticks = Ticks()
    with pytest.raises(ProviderError, match="still generating") as raised:
        AccessAdvisor(client, ticks.sleep, ticks.clock, wait_at_most=2 * POLL_EVERY).services(ARN)
    assert raised.value.retryable and ticks.slept == [POLL_EVERY, POLL_EVERY]


def test_a_refusal_is_a_provider_error_that_is_not_retried(iam):
    client, stubber = iam
    stubber.add_client_error("generate_service_last_accessed_details", "NoSuchEntity",
                             "The group with name ops cannot be found.", 404)
    with pytest.raises(ProviderError, match="NoSuchEntity") as raised:
        AccessAdvisor(client).services(ARN)
    assert not raised.value.retryable


def test_an_endpoint_without_the_call_is_a_retryable_error_not_a_crash(moto_server,
                                                                        monkeypatch):
    """moto's server has no access advisor: its 500 page is what any endpoint without the
    call gives, and the review goes on without the sentence."""
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    client = make_client("iam", connections=2)
    with pytest.raises(ProviderError, match="no readable answer") as raised:
        AccessAdvisor(client).services(ARN)
    assert raised.value.retryable
