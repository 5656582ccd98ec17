"""Builds the boto3 clients the adapters use, with bounded retries and timeouts."""

import functools
import gzip
import json
import logging
import os

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import JSONFileLoader, Loader
from botocore.parsers import ResponseParserError

from accessbot.services import metrics

DEFAULT_REGION = "us-east-1"
log = logging.getLogger(__name__)

# Adaptive mode retries throttling and transient errors with backoff, and slows the
# client's own sending rate while AWS throttles (shared by every thread); the timeouts
# keep a dead endpoint from holding a worker for minutes. Callers retry later on
# ProviderError.
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "total_max_attempts": 3},  # first try + 2 retries
    connect_timeout=5,
    read_timeout=10,
)


# The services the bot calls (make_client refuses any other), each with the name AWS's
# endpoint data knows it by (its endpointPrefix: sso-admin's is "sso")
SERVICES = {"iam": "iam", "sts": "sts", "sso-admin": "sso", "identitystore": "identitystore",
            "cloudtrail": "cloudtrail", "s3": "s3"}


class _OurEndpoints(JSONFileLoader):
    """Reads AWS's endpoint data (botocore's endpoints.json) with only the services of
    SERVICES. With all of them (305 in the aws partition, 1,170 entries in all) it held
    6.6 MB of the worker's memory. Trimming it after the parse gave little of that back
    (what a parse allocated stays the process's), so each partition's other services are
    dropped as soon as it is parsed. The file is still the bundled one: botocore resolves
    endpoints through its rulesets as before (tests/aws/test_session.py compares)."""

    def load_file(self, file_path):
        if os.path.basename(file_path) != "endpoints":
            return super().load_file(file_path)
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + extension):
                with opener(file_path + extension, "rb") as file:
                    return json.loads(file.read().decode("utf-8"),
                                      object_pairs_hook=_our_services_only)
        return None


def _our_services_only(pairs: list[tuple]) -> dict:
    entry = dict(pairs)
    if "partition" in entry and isinstance(entry.get("services"), dict):
        kept = set(SERVICES.values())
        entry["services"] = {name: spec for name, spec in entry["services"].items()
                             if name in kept}
    return entry


@functools.cache
def _data_loader() -> Loader:
    """botocore's data loader (AWS_DATA_PATH honoured), reading endpoints as above."""
    data_path = botocore.session.get_session().get_config_variable("data_path")
    extra = [os.path.expanduser(os.path.expandvars(path))
             for path in data_path.split(os.pathsep)] if data_path else []
    return Loader(extra_search_paths=extra, file_loader=_OurEndpoints())


def botocore_session() -> botocore.session.Session:
    """A new botocore session with the process's one data loader. The loader keeps what it
    read: AWS's endpoint data and each service's model, about 10 MB for IAM. A loader per
    session (botocore's default) held a copy for every client and every account."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _data_loader())
    return session


def new_session() -> boto3.Session:
    """A boto3 session on the bot's own credentials (the default chain), sharing the loader."""
    return boto3.Session(botocore_session=botocore_session())


def default_region() -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def aws_credentials_problem() -> str | None:
    """Why boto3's credential chain finds none, or None (it does not ask AWS about them)."""
    try:
        found = new_session().get_credentials()
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        return str(exc)
    if found is None:
        return ("none found (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a "
                "task, pod or instance role)")
    return None


# What STS answers for credentials that are not (or no longer) good
REFUSED = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
                     "ExpiredTokenException", "UnrecognizedClientException",
                     "InvalidAccessKeyId", "AuthFailure", "AccessDenied"})
QUICK = Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 1})


def aws_refusal() -> str | None:
    """Why AWS refuses the credentials, asked with STS GetCallerIdentity (which any identity
    may call), or None. An AWS that does not answer is not a refusal: the start goes on,
    and grants retry."""
    sts = new_session().client("sts", region_name=default_region(), config=QUICK)
    try:
        sts.get_caller_identity()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in REFUSED:
            return f"AWS refused them ({error.get('Code')}: {error.get('Message', '')})"
        log.warning("could not check the AWS credentials with STS: %s", exc)
    except (BotoCoreError, ResponseParserError) as exc:
        log.warning("could not check the AWS credentials with STS (%s); starting anyway", exc)
    return None


def make_iam_client(region: str | None = None, connections: int = 32) -> BaseClient:
    """An IAM client; boto3 itself honours AWS_ENDPOINT_URL (e.g. a moto server).
    `connections`: one per thread that may call AWS at once (the AWS pool, the timers)."""
    return make_client("iam", region, connections)


def make_client(service: str, region: str | None = None, connections: int = 32,
                session: boto3.Session | None = None, config: Config | None = None
                ) -> BaseClient:
    """A client of `service` with the retries, timeouts and call counting above; on the
    bot's own credentials, or on `session` (an account's assumed role, aws/accounts.py);
    `config` overrides (e.g. the retries of an adapter that does its own)."""
    if service not in SERVICES:
        raise ValueError(f"{service}: add it to aws/session.SERVICES (and its endpointPrefix), "
                         "whose endpoint data the bot keeps")
    merged = CLIENT_CONFIG.merge(Config(max_pool_connections=connections))
    client = (session or new_session()).client(
        service, region_name=region or default_region(),
        config=merged.merge(config) if config else merged)
    event = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"after-call.{event}", _count_call)
    client.meta.events.register(f"after-call-error.{event}", _count_failed_call)
    return client


def make_sts_client(region: str | None = None) -> BaseClient:
    """STS, for `accessbot doctor`'s GetCallerIdentity (AWS_ENDPOINT_URL honoured too)."""
    return make_client("sts", region, connections=2)


def _count_call(http_response, parsed, model, **_) -> None:
    """Every attempt botocore makes (retries too), with AWS's error code if any."""
    error = (parsed or {}).get("Error", {}).get("Code", "") if isinstance(parsed, dict) else ""
    metrics.AWS_CALLS.labels(model.service_model.service_id.hyphenize(), model.name,
                             error).inc()


def _count_failed_call(exception, event_name: str = "", **_) -> None:
    """No answer (timeout, refused): botocore names the operation only in the event."""
    _, service, operation = event_name.split(".", 2)
    metrics.AWS_CALLS.labels(service, operation, type(exception).__name__).inc()
