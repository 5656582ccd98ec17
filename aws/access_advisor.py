"""IAM's last-accessed data (access advisor): which services a group, role or user may use,
and when each was last used. Read for the access review's "unused permissions"."""

import time
from collections.abc import Callable
from datetime import UTC

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from accessbot.aws.iam import provider_error
from accessbot.services.ports import ProviderError, ServiceUse

POLL_EVERY = 1.0   # seconds between GetServiceLastAccessedDetails while IAM generates
WAIT_AT_MOST = 60.0  # then give up for this run: retryable, IAM keeps the job's result
PAGE = 200


class AccessAdvisor:
    """The LastAccessed port on one account's IAM client."""

    def __init__(self, iam: BaseClient, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 wait_at_most: float = WAIT_AT_MOST):
        self.iam = iam
        self.sleep, self.clock, self.wait_at_most = sleep, clock, wait_at_most

    def services(self, arn: str) -> list[ServiceUse]:
        """GenerateServiceLastAccessedDetails for the principal, polled until IAM is done,
        then every page of its services."""
        job = _call(self.iam.generate_service_last_accessed_details,
                    f"asking for the last-accessed data of {arn}",
                    Arn=arn, Granularity="SERVICE_LEVEL")["JobId"]
        page = self._finished(job, arn)
        uses = _uses(page)
        while page.get("IsTruncated"):
            page = self._get(job, arn, Marker=page["Marker"])
            uses += _uses(page)
        return uses

    def _finished(self, job: str, arn: str) -> dict:
        """The first page, once the job is COMPLETED; ProviderError when it FAILED or is still
        running after wait_at_most (retryable: IAM finishes it meanwhile)."""
        deadline = self.clock() + self.wait_at_most
        while True:
            page = self._get(job, arn)
            status = page.get("JobStatus")
            if status == "COMPLETED":
                return page
            if status == "FAILED":
                error = page.get("Error") or {}
                raise ProviderError(f"AWS IAM could not generate the last-accessed data of "
                                    f"{arn} ({error.get('Code', 'Unknown')}: "
                                    f"{error.get('Message', '')})", retryable=True)
            if self.clock() >= deadline:
                raise ProviderError(f"AWS IAM is still generating the last-accessed data of "
                                    f"{arn}", retryable=True)
            self.sleep(POLL_EVERY)

    def _get(self, job: str, arn: str, **marker: str) -> dict:
        return _call(self.iam.get_service_last_accessed_details,
                     f"reading the last-accessed data of {arn}", JobId=job, MaxItems=PAGE,
                     **marker)


def _call(operation: Callable[..., dict], doing: str, **kwargs) -> dict:
    try:
        return operation(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise provider_error(exc, doing) from exc
    except ResponseParserError as exc:  # not IAM's answer: an endpoint without the call
        raise ProviderError(f"AWS IAM gave no readable answer while {doing}",
                            retryable=True) from exc


def _uses(page: dict) -> list[ServiceUse]:
    found = []
    for service in page.get("ServicesLastAccessed", []):
        last = service.get("LastAuthenticated")
        found.append(ServiceUse(service["ServiceNamespace"], service.get("ServiceName", ""),
                                last.astimezone(UTC) if last is not None else None))
    return found
