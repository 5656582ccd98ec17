"""aws/session.py: the endpoint data the bot keeps, and what it changes (nothing)."""

import os

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from accessbot.aws.session import SERVICES, _OurEndpoints, make_client

# a call of each service: where it goes and what it is signed for, taken at the moment
# botocore would send it
CALLS = {"iam": ("list_users", {}), "sts": ("get_caller_identity", {}),
         "sso-admin": ("list_instances", {}),
         "identitystore": ("list_users", {"IdentityStoreId": "d-1234567890"}),
         "cloudtrail": ("lookup_events", {}), "s3": ("list_buckets", {})}
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1")
CONFIGS = {"plain": Config(), "fips": Config(use_fips_endpoint=True),
           "dualstack": Config(use_dualstack_endpoint=True)}


class _Sending(Exception):
    def __init__(self, request):
        # where, and the scope it is signed for (Credential=key/date/region/service/...)
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        scope = authorization.split("Credential=", 1)[-1].split(",", 1)[0].split("/", 2)[-1]
        self.where = f"{request.url} signed for {scope}"


@pytest.fixture
def no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_DATA_PATH"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _where_it_would_go(loader: Loader, service: str, region: str, config: Config) -> str:
    session = botocore.session.get_session()
    session.register_component("data_loader", loader)
    try:
        client = boto3.Session(botocore_session=session).client(
            service, region_name=region, config=config)
    except Exception as exc:  # the same refusal either way (no FIPS endpoint there, say)
        return f"refused: {type(exc).__name__}"

    def stop(request, **_):
        raise _Sending(request)

    client.meta.events.register("before-send", stop)
    operation, args = CALLS[service]
    try:
        getattr(client, operation)(**args)
    except _Sending as sending:
        return sending.where
    except Exception as exc:
        return f"refused: {type(exc).__name__}"
    raise AssertionError("the call was sent")


def test_the_endpoint_data_holds_only_the_services_the_bot_calls():
    endpoints = Loader(file_loader=_OurEndpoints()).load_data("endpoints")

    kept = {partition["partition"]: set(partition["services"])
            for partition in endpoints["partitions"]}
    assert kept["aws"] == set(SERVICES.values())
    assert all(services <= set(SERVICES.values()) for services in kept.values())
    full = create_loader().load_data("endpoints")
    assert [p["partition"] for p in endpoints["partitions"]] == \
        [p["partition"] for p in full["partitions"]]
    assert [p["regions"] for p in endpoints["partitions"]] == \
        [p["regions"] for p in full["partitions"]]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_is_kept_under_the_name_the_endpoint_data_uses(service):
    model = create_loader().load_service_model(service, "service-2")
    assert model["metadata"]["endpointPrefix"] == SERVICES[service]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_call_goes_where_it_would_with_all_of_awss_endpoint_data(
        no_endpoint_override, service, region, config):
    ours = _where_it_would_go(Loader(file_loader=_OurEndpoints()), service, region,
                              CONFIGS[config])
    stock = _where_it_would_go(create_loader(), service, region, CONFIGS[config])
    assert ours == stock
    assert ours.startswith(("https://", "refused: "))


def test_a_client_of_a_service_not_in_the_list_is_refused(no_endpoint_override):
    with pytest.raises(ValueError, match="ec2: add it to aws/session.SERVICES"):
        make_client("ec2")
