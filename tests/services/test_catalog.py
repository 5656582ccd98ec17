import copy
from datetime import timedelta

import pytest

from accessbot.services.catalog import Audit, ResourceKind, load_catalog, parse_catalog
from accessbot.services.errors import ConfigError
from tests.conftest import CATALOG

MINIMAL = {"kind": "iam_group", "group": "devs", "approvers": ["U0BOB"]}


def with_resource(**spec) -> dict:
    """A config with the one resource 'x', built from MINIMAL and `spec` (None removes)."""
    merged = {**MINIMAL, **spec}
    return {"resources": {"x": {k: v for k, v in merged.items() if v is not None}}}


def config_error(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(raw)
    return str(caught.value)


def test_parses_the_example_and_applies_defaults():
    catalog = parse_catalog(CATALOG)

    assert catalog.approval_channel == "C0APPROVALS"
    assert catalog.admin_channel == "C0SECURITY"
    assert catalog.request_timeout == timedelta(hours=24)
    admins = catalog.get("prod-admins")
    assert (admins.kind, admins.target) == (ResourceKind.IAM_GROUP, "prod-admins")
    assert admins.approvers == ("U0BOB", "U0DAVE")
    assert (admins.min_duration, admins.default_duration, admins.max_duration) == (
        timedelta(minutes=5), timedelta(hours=1), timedelta(hours=4))
    readonly = catalog.get("prod-readonly")
    assert (readonly.kind, readonly.target) == (ResourceKind.IAM_ROLE, "ProdReadOnly")
    # only max_duration was given: the rest are defaults
    assert readonly.max_duration == timedelta(hours=8)
    assert readonly.default_duration == timedelta(hours=1)
    assert readonly.min_duration == timedelta(minutes=1)
    assert readonly.expiry_warning == timedelta(minutes=15)
    assert readonly.requesters == ()


def test_default_duration_defaults_to_max_when_max_is_short():
    resource = parse_catalog(with_resource(max_duration="30m")).get("x")
    assert resource.default_duration == timedelta(minutes=30)


def test_request_timeout_can_be_set():
    raw = {**with_resource(), "request_timeout": "2h"}
    assert parse_catalog(raw).request_timeout == timedelta(hours=2)


def test_role_given_as_arn_is_accepted():
    arn = "arn:aws:iam::123456789012:role/team/ProdReadOnly"
    resource = parse_catalog(with_resource(kind="iam_role", group=None, role=arn)).get("x")
    assert resource.kind is ResourceKind.IAM_ROLE
    assert resource.target == arn


def test_arn_is_not_accepted_as_a_group_name():
    arn = "arn:aws:iam::123456789012:role/ProdReadOnly"
    assert ": resources.x.group: " in config_error(with_resource(group=arn))


@pytest.mark.parametrize("raw, path", [
    ({**CATALOG, "colour": "blue"}, "colour"),
    ({**CATALOG, "approval_channel": "#approvals"}, "approval_channel"),
    ({**CATALOG, "admin_channel": "U0BOB"}, "admin_channel"),
    ({**CATALOG, "request_timeout": "forever"}, "request_timeout"),
    ({"resources": {}}, "resources"),
    ({"approval_channel": "C0APPROVALS"}, "resources"),
    ({"resources": ["x"]}, "resources"),
    ({"resources": {"Prod Admins": MINIMAL}}, "resources.Prod Admins"),
    ({"resources": {"x": "devs"}}, "resources.x"),
    (with_resource(kind="iam_user"), "resources.x.kind"),
    (with_resource(kind=None), "resources.x.kind"),
    (with_resource(group=None), "resources.x.group"),
    (with_resource(group="bad group name"), "resources.x.group"),
    (with_resource(role="Admin"), "resources.x.role"),
    (with_resource(kind="iam_role", group=None), "resources.x.role"),
    (with_resource(kind="iam_role", role="R", group="g"), "resources.x.group"),
    (with_resource(approvers=None), "resources.x.approvers"),
    (with_resource(approvers=[]), "resources.x.approvers"),
    (with_resource(approvers="U0BOB"), "resources.x.approvers"),
    (with_resource(approvers=["U0BOB", "@dave"]), "resources.x.approvers[1]"),
    (with_resource(requesters=["U0BOB", "U0CAROL", 42]), "resources.x.requesters[2]"),
    (with_resource(default_duration="5h"), "resources.x.default_duration"),
    (with_resource(default_duration="2m", min_duration="5m"), "resources.x.default_duration"),
    (with_resource(min_duration="5h"), "resources.x.min_duration"),
    (with_resource(max_duration="forever"), "resources.x.max_duration"),
    (with_resource(expiry_warning="0m"), "resources.x.expiry_warning"),
    (with_resource(description="x" * 301), "resources.x.description"),
    ("resources: x", "(top level)"),
])
def test_error_names_the_path_of_the_bad_value(raw, path):
    assert f": {path}: " in config_error(raw)


def test_unknown_resource_key_is_named_with_its_path():
    raw = copy.deepcopy(CATALOG)
    raw["resources"]["prod-admins"]["foo"] = 1
    message = config_error(raw)
    assert ": resources.prod-admins.foo: " in message
    assert "unknown key" in message


def test_load_catalog_reads_a_file(tmp_path):
    path = tmp_path / "accessbot.yaml"
    path.write_text("resources:\n  x:\n    kind: iam_group\n    group: devs\n"
                    "    approvers: [U0BOB]\n")
    assert load_catalog(path).get("x").target == "devs"


def test_load_catalog_names_the_file_in_errors(tmp_path):
    path = tmp_path / "accessbot.yaml"
    path.write_text("resources:\n  x:\n    kind: iam_gruop\n")
    with pytest.raises(ConfigError, match=f"^{path}: resources.x.kind: "):
        load_catalog(path)


def test_load_catalog_on_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="ACCESSBOT_CONFIG") as caught:
        load_catalog(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in str(caught.value)


def test_load_catalog_on_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("resources:\n  x: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_catalog(path)
    assert f"{path}, line 3, column 1: not valid YAML" in str(caught.value)
    assert "<unicode string>" not in str(caught.value)


def test_an_expiry_warning_as_long_as_the_grant_is_refused():
    message = config_error(with_resource(max_duration="1h", expiry_warning="1h"))
    assert "resources.x.expiry_warning: 1h is not shorter than max_duration (1h)" in message
    # the default warning (15m) with a short max_duration stays accepted: short grants
    # are warned as soon as they start, as before
    assert parse_catalog(with_resource(max_duration="10m")).resources["x"]


@pytest.mark.parametrize("approvers, requesters", [
    (["U0BOB"], ["U0BOB"]),
    (["U0BOB"], ["U0ALICE", "U0BOB"]),  # Bob's own requests could never be approved
])
def test_a_requester_who_is_the_only_approver_is_refused(approvers, requesters):
    message = config_error(with_resource(approvers=approvers, requesters=requesters))
    assert "resources.x.approvers: U0BOB is the only approver and may request it" in message


def test_a_requester_with_another_approver_is_accepted():
    raw = with_resource(approvers=["U0BOB", "U0DAVE"], requesters=["U0BOB"])
    assert parse_catalog(raw).resources["x"].approvers == ("U0BOB", "U0DAVE")


def test_no_admin_channel_is_a_warning():
    assert "admin_channel is not set" in parse_catalog(with_resource()).warnings()[0]
    assert parse_catalog({**with_resource(), "admin_channel": "C0SEC"}).warnings() == []


def test_the_example_config_in_the_repository_is_valid():
    from pathlib import Path

    from accessbot.services.catalog import load_catalog

    catalog = load_catalog(Path(__file__).resolve().parents[2] / "accessbot.example.yaml")
    assert sorted(catalog.resources) == ["prod-admins", "prod-readonly"]
    assert catalog.resources["prod-admins"].approvers == ("U0BOB", "U0DAVE")


def test_hygiene_defaults_follow_the_cis_benchmark():
    hygiene = parse_catalog(CATALOG).hygiene
    assert hygiene.policy.access_key_max_age == timedelta(days=90)
    assert hygiene.policy.unused_credential_age == timedelta(days=45)
    assert hygiene.policy.unused_user_age == timedelta(days=90)
    assert (hygiene.interval, hygiene.reminder_interval, hygiene.escalate_after,
            hygiene.snooze) == (timedelta(days=1), timedelta(days=3), timedelta(days=14),
                                timedelta(days=7))
    assert hygiene.auto_disable_after is None
    assert hygiene.password_policy.minimum_length == 14
    assert hygiene.password_policy.reuse_prevention == 24
    assert hygiene.min_administrators == 2


def test_hygiene_can_be_turned_off_and_exclude_users_by_name_path_or_tag():
    hygiene = parse_catalog({**CATALOG, "hygiene": {
        "enabled": False,
        "exclude": ["svc-deploy", "/service/", "AccessBot-Ignore = true"]}}).hygiene
    assert hygiene.enabled is False
    exclude = hygiene.exclude
    assert exclude.covers("svc-deploy", "/", {})
    assert exclude.covers("ci", "/service/ci/", {})
    assert exclude.covers("ci", "/", {"accessbot-ignore": "true"})  # tag keys: lowercased
    assert not exclude.covers("alice", "/", {"accessbot-ignore": "false"})
    assert not parse_catalog(CATALOG).hygiene.exclude  # none by default, and on by default
    assert parse_catalog(CATALOG).hygiene.enabled is True
    assert parse_catalog(CATALOG).hygiene.mode == "notify"


def test_hygiene_settings_can_be_set():
    raw = {**CATALOG, "hygiene": {
        "access_key_max_age": "1s", "unused_credential_age": "45d", "interval": "6h",
        "auto_disable_after": "30d", "min_administrators": 3,
        "password_policy": {"minimum_length": 16, "require_symbols": False}}}
    hygiene = parse_catalog(raw).hygiene
    assert hygiene.policy.access_key_max_age == timedelta(seconds=1)
    assert hygiene.interval == timedelta(hours=6)
    assert hygiene.auto_disable_after == timedelta(days=30)
    assert hygiene.min_administrators == 3
    assert hygiene.password_policy.minimum_length == 16
    assert hygiene.password_policy.require_symbols is False
    assert hygiene.password_policy.reuse_prevention == 24  # not given: the baseline's


@pytest.mark.parametrize("hygiene, path", [
    ({"access_key_max_age": "ninety days"}, "hygiene.access_key_max_age"),
    ({"stale_after": "90d"}, "hygiene.stale_after"),
    ({"password_policy": {"minimum_length": "long"}}, "hygiene.password_policy.minimum_length"),
    ({"password_policy": {"require_symbols": "yes"}}, "hygiene.password_policy.require_symbols"),
    ({"password_policy": {"min_length": 14}}, "hygiene.password_policy.min_length"),
    ({"min_administrators": -1}, "hygiene.min_administrators"),
    ("daily", "hygiene"),
    ({"enabled": "no"}, "hygiene.enabled"),
    ({"mode": "quiet"}, "hygiene.mode"),
    ({"exclude": "svc-deploy"}, "hygiene.exclude"),
    ({"exclude": ["svc-deploy", "/service"]}, "hygiene.exclude[1]"),
    ({"exclude": ["bad name!"]}, "hygiene.exclude[0]"),
    ({"exclude": [7]}, "hygiene.exclude[0]"),
])
def test_hygiene_errors_name_the_path(hygiene, path):
    assert f"config: {path}:" in config_error({**CATALOG, "hygiene": hygiene})



# -- review ----------------------------------------------------------------------------

def test_review_defaults_and_settings():
    review = parse_catalog(CATALOG).review
    assert (review.interval, review.unused_service_age, review.enabled) == (
        timedelta(days=30), timedelta(days=90), True)
    assert review.groups == review.roles == ()
    review = parse_catalog({**CATALOG, "review": {
        "interval": "7d", "groups": ["break-glass"], "roles": ["Deploy"],
        "unused_service_age": "30d", "enabled": False}}).review
    assert (review.interval, review.groups, review.roles, review.unused_service_age,
            review.enabled) == (timedelta(days=7), ("break-glass",), ("Deploy",),
                                timedelta(days=30), False)


@pytest.mark.parametrize("review, path", [
    ("yes", "review"),
    ({"every": "7d"}, "review.every"),
    ({"interval": "soon"}, "review.interval"),
    ({"interval": "0s"}, "review.interval"),
    ({"unused_service_age": "-1d"}, "review.unused_service_age"),
    ({"enabled": "no"}, "review.enabled"),
    ({"groups": "admins"}, "review.groups"),
    ({"groups": ["ok", "bad name!"]}, "review.groups[1]"),
    ({"roles": [7]}, "review.roles[0]"),
    ({"roles": ["Deploy", "Deploy"]}, "review.roles"),
])
def test_review_errors_name_the_path(review, path):
    assert f"config: {path}:" in config_error({**CATALOG, "review": review})


def test_the_audit_archive_is_off_unless_a_bucket_is_given():
    assert parse_catalog(CATALOG).audit == Audit(None, "accessbot/audit/")
    audit = parse_catalog({**CATALOG, "audit": {"s3_bucket": "acme-evidence",
                                                "s3_prefix": "bots/accessbot/"}}).audit
    assert audit == Audit("acme-evidence", "bots/accessbot/")


@pytest.mark.parametrize("audit, path", [
    ("acme-evidence", "audit"),
    ({"bucket": "acme-evidence"}, "audit.bucket"),
    ({"s3_bucket": "Acme_Evidence"}, "audit.s3_bucket"),
    ({"s3_bucket": "ab"}, "audit.s3_bucket"),
    ({"s3_bucket": "acme-evidence", "s3_prefix": "/audit/"}, "audit.s3_prefix"),
    ({"s3_bucket": "acme-evidence", "s3_prefix": 7}, "audit.s3_prefix"),
])
def test_audit_errors_name_the_path(audit, path):
    assert f"config: {path}:" in config_error({**CATALOG, "audit": audit})


def test_role_hygiene_defaults_and_settings():
    policy = parse_catalog(CATALOG).hygiene.policy
    assert (policy.unused_role_age, policy.max_role_session) == (timedelta(days=90),
                                                                 timedelta(hours=1))
    policy = parse_catalog({**CATALOG, "hygiene": {"unused_role_age": "30d",
                                                   "max_role_session": "12h"}}).hygiene.policy
    assert (policy.unused_role_age, policy.max_role_session) == (timedelta(days=30),
                                                                 timedelta(hours=12))


@pytest.mark.parametrize("session", ["59m", "12h1s", "1d", "soon"])
def test_max_role_session_is_within_iams_limits(session):
    error = config_error({**CATALOG, "hygiene": {"max_role_session": session}})
    assert "config: hygiene.max_role_session:" in error
    if session != "soon":
        assert "from 1h to 12h" in error


# -- accounts and IAM Identity Center ----------------------------------------------------

ACCOUNTS = {"prod": {"id": "222222222222",
                     "role_arn": "arn:aws:iam::222222222222:role/accessbot"},
            "staging": {"id": "333333333333"}}
PS = {"kind": "sso_permission_set", "permission_set": "AdministratorAccess",
      "approvers": ["U0BOB"]}


def sso(accounts=ACCOUNTS, **resources) -> dict:
    return {"accounts": accounts, "resources": resources}


def test_the_identity_center_kinds_and_accounts_are_parsed():
    catalog = parse_catalog(sso(**{
        "prod-admin": {**PS, "account": "prod"},
        "everywhere": {**PS, "permission_set": "ReadOnly", "accounts": ["prod", "444444444444"]},
        "oncall": {"kind": "sso_group", "group": "On-call engineers", "approvers": ["U0BOB"]},
    }) | {"identity_center": {"instance_arn": "arn:aws:sso:::instance/ssoins-0123456789abcdef",
                              "identity_store_id": "d-0123456789", "region": "eu-west-1"}})

    assert catalog.resources["prod-admin"].accounts == ("222222222222",)
    assert catalog.resources["everywhere"].accounts == ("222222222222", "444444444444")
    oncall = catalog.resources["oncall"]
    assert (oncall.kind, oncall.target, oncall.accounts) == (
        ResourceKind.SSO_GROUP, "On-call engineers", ())
    assert catalog.accounts["prod"].role_arn == "arn:aws:iam::222222222222:role/accessbot"
    assert catalog.identity_center.region == "eu-west-1"
    ops = parse_catalog(sso(ops={**MINIMAL, "account": "prod"})).resources["ops"]
    assert ops.accounts == ("222222222222",)
    assert catalog.uses_identity_center()
    assert not parse_catalog(CATALOG).uses_identity_center()


@pytest.mark.parametrize("raw, path", [
    (sso(x={**PS}), "resources.x.account"),
    (sso(x={**PS, "account": "dev"}), "resources.x.account"),
    (sso(x={**PS, "accounts": ["prod", "1234"]}), "resources.x.accounts[1]"),
    (sso(x={**PS, "accounts": ["prod", "222222222222"]}), "resources.x.accounts"),
    (sso(x={**PS, "account": "prod", "accounts": ["staging"]}), "resources.x.accounts"),
    (sso(x={**PS, "permission_set": "Admin Access", "account": "prod"}),
     "resources.x.permission_set"),
    (sso(x={**PS, "role": "R", "account": "prod"}), "resources.x.role"),
    (sso(x={**MINIMAL, "account": "staging"}), "resources.x.account"),  # no role_arn
    (sso(x={**MINIMAL, "accounts": ["prod"]}), "resources.x.accounts"),
    (sso(x={"kind": "sso_group", "group": "g", "approvers": ["U0BOB"], "account": "prod"}),
     "resources.x.account"),
    (sso(x={"kind": "sso_group", "group": " padded", "approvers": ["U0BOB"]}), "resources.x.group"),
    (sso(accounts={"prod": {"id": 222222222222 // 10}}, x=MINIMAL), "accounts.prod.id"),
    (sso(accounts={"prod": {"id": "222222222222", "role_arn": "arn:aws:iam::111111111111:role/a"}},
         x=MINIMAL), "accounts.prod.role_arn"),
    (sso(accounts={"prod": {"id": "222222222222", "region": "x"}}, x=MINIMAL),
     "accounts.prod.region"),
    (sso(accounts={"a": {"id": "222222222222"}, "b": {"id": "222222222222"}}, x=MINIMAL),
     "accounts"),
    ({**sso(x=MINIMAL), "identity_center": {"instance_arn": "ssoins-1"}},
     "identity_center.instance_arn"),
    ({**sso(x=MINIMAL), "identity_center": {
        "instance_arn": "arn:aws:sso:::instance/ssoins-0123456789abcdef"}}, "identity_center"),
    ({**sso(x=MINIMAL), "identity_center": {"region": "mars"}}, "identity_center.region"),
])
def test_identity_center_errors_name_the_path(raw, path):
    assert f": {path}: " in config_error(raw)


ROLE = {"kind": "iam_role", "role": "DbAdmin", "approvers": ["U0BOB"]}


def test_role_conditions_are_parsed_and_said():
    resource = parse_catalog({"resources": {"db": {
        **ROLE, "source_ips": ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"],
        "require_mfa": True}}}).resources["db"]
    assert resource.source_ips == ("10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32")
    assert resource.require_mfa is True
    assert resource.conditions_text() == (
        "only from 10.0.0.0/8, 203.0.113.7/32, 2001:db8::/32; only with MFA")
    assert parse_catalog({"resources": {"db": ROLE}}).resources["db"].conditions_text() == ""


@pytest.mark.parametrize("changes, path", [
    ({"source_ips": ["10.0.0.0/8", "10.0.0.1/8"]}, "resources.x.source_ips[1]"),  # host bits
    ({"source_ips": ["not an ip"]}, "resources.x.source_ips[0]"),
    ({"source_ips": "10.0.0.0/8"}, "resources.x.source_ips"),
    ({"source_ips": []}, "resources.x.source_ips"),
    ({"require_mfa": "yes"}, "resources.x.require_mfa"),
    ({"kind": "iam_group", "group": "g", "role": None, "require_mfa": True},
     "resources.x.require_mfa"),
])
def test_role_condition_errors_name_the_path(changes, path):
    spec = {k: v for k, v in {**ROLE, **changes}.items() if v is not None}
    assert f": {path}: " in config_error({"resources": {"x": spec}})


def test_role_grants_is_one_of_two_ways():
    assert parse_catalog(CATALOG).role_grants == "user_policy"
    assert parse_catalog({**CATALOG, "role_grants": "trust_policy"}).role_grants == \
        "trust_policy"
    assert ": role_grants: 'inline' is not one of user_policy, trust_policy" in config_error(
        {**CATALOG, "role_grants": "inline"})


def test_the_iam_user_path_is_checked():
    assert parse_catalog({**CATALOG, "iam_user_path": "/people/"}).iam_user_path == "/people/"
    assert parse_catalog(CATALOG).iam_user_path == "/"
    for bad in ("people", "/people", "", 3):
        assert ": iam_user_path: " in config_error({**CATALOG, "iam_user_path": bad})


# -- approval policy (N-of-M, user groups, reminders, lifetime, break-glass) --------------

def resource_with(**spec):
    return parse_catalog({"resources": {"r": {**MINIMAL, **spec}}}).get("r")


def test_approval_policy_defaults():
    r = resource_with()
    assert (r.approvals_required, r.approval, r.approval_channel, r.remind_after,
            r.max_total_duration, r.break_glass) == (1, "required", None,
                                                     timedelta(minutes=15), None, False)
    assert r.needs_approval
    assert (r.break_glass_max_duration, r.break_glass_review_within) == (
        timedelta(hours=1), timedelta(hours=24))


def test_the_issue_example_parses():
    catalog = parse_catalog({"admins": ["U0SECLEAD", "S0SECURITY"], "approval_channel": "C0ALL",
                             "resources": {
        "prod-admins": {"kind": "iam_group", "group": "prod-admins",
                        "approvers": ["U0BOB", "S0SRE"], "approval_channel": "C0PRODAPPROVALS",
                        "approvals_required": 2, "remind_after": "15m",
                        "max_total_duration": "12h", "break_glass": True,
                        "break_glass_max_duration": "1h", "break_glass_review_within": "24h"},
        "sandbox": {"kind": "iam_group", "group": "sandbox", "approval": "none"}}})
    prod, sandbox = catalog.get("prod-admins"), catalog.get("sandbox")
    assert catalog.admins == ("U0SECLEAD", "S0SECURITY")
    assert (prod.approvers, prod.approvals_required, prod.max_total_duration) == (
        ("U0BOB", "S0SRE"), 2, timedelta(hours=12))
    assert catalog.approval_channel_for(prod) == "C0PRODAPPROVALS"
    assert catalog.approval_channel_for(sandbox) == "C0ALL"
    assert prod.break_glass and not sandbox.needs_approval and sandbox.approvers == ()


@pytest.mark.parametrize("spec, path, says", [
    ({"approvals_required": 0}, "approvals_required", "1 or more"),
    ({"approvals_required": True}, "approvals_required", "whole number"),
    ({"approvals_required": 2}, "approvals_required", "only 1 approver"),
    ({"approval": "maybe"}, "approval", "expected one of"),
    ({"approval_channel": "U0BOB"}, "approval_channel", "channel id"),
    ({"remind_after": "soon"}, "remind_after", ""),
    ({"max_total_duration": "1h"}, "max_total_duration", "shorter than max_duration"),
    ({"break_glass": "yes"}, "break_glass", "true or false"),
    ({"break_glass_max_duration": "30m"}, "break_glass_max_duration", "break_glass: true"),
    ({"break_glass": True, "break_glass_max_duration": "5h"}, "break_glass_max_duration",
     "above max_duration"),
    ({"approvers": ["C0TEAM"]}, "approvers[0]", "user group like S0123ABCD"),
])
def test_approval_policy_errors_name_the_path(spec, path, says):
    error = config_error({"resources": {"r": {**MINIMAL, **spec}}})
    assert f"config: resources.r.{path}:" in error and says in error


def test_a_user_group_may_make_up_the_approvals_and_approval_none_needs_no_approvers():
    assert resource_with(approvers=["U0BOB", "S0SRE"], approvals_required=3).approvals_required == 3
    assert resource_with(approval="none", approvers=None).approvers == ()
    assert "approvers" in config_error({"resources": {"r": {"kind": "iam_group", "group": "g"}}})
