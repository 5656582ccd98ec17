"""IamUserIndex against moto: tag lookups, refresh-on-miss rate limit, pagination, groups."""

import threading

import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber

from accessbot.aws.directory import IamUserIndex
from accessbot.services.ports import ProviderError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_user(admin: BaseClient, name: str, **tags: str) -> None:
    admin.create_user(
        UserName=name, Tags=[{"Key": k.replace("_", "-"), "Value": v} for k, v in tags.items()]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def index(iam: BaseClient, clock: FakeClock) -> IamUserIndex:
    return IamUserIndex(iam, min_refresh_interval=30.0, clock=clock)


@pytest.fixture
def people(admin: BaseClient) -> None:
    add_user(admin, "alice", slack_user_id="U0ALICE", email="alice@example.com")
    add_user(admin, "carol", email="Carol@Example.COM")
    add_user(admin, "svc-ci")  # no tags
    for group in ("prod-admins", "readers"):
        admin.create_group(GroupName=group)
        admin.add_user_to_group(GroupName=group, UserName="alice")


def test_lookup_by_slack_tag(index: IamUserIndex, people: None) -> None:
    assert index.iam_user_for("U0ALICE", None) == "alice"
    assert index.iam_user_for("U0ALICE", "someone-else@example.com") == "alice"
    assert index.size == 3


def test_lookup_by_email_tag_is_case_insensitive(index: IamUserIndex, people: None) -> None:
    assert index.iam_user_for("U0CAROL", "carol@example.com") == "carol"
    assert index.iam_user_for("U0CAROL", " CAROL@example.com ") == "carol"


def test_unknown_user_is_none(index: IamUserIndex, people: None) -> None:
    assert index.iam_user_for("U0NOBODY", None) is None
    assert index.iam_user_for("U0NOBODY", "nobody@example.com") is None


def test_email_does_not_map_a_user_tagged_for_another_slack_id(
    index: IamUserIndex, people: None
) -> None:
    # alice's IAM user says it belongs to U0ALICE; a Slack user claiming her email is not her.
    assert index.iam_user_for("U0MALLORY", "alice@example.com") is None


def test_ambiguous_tags_map_nobody(index: IamUserIndex, admin: BaseClient) -> None:
    add_user(admin, "dave", slack_user_id="U0DAVE")
    add_user(admin, "dave-old", slack_user_id="U0DAVE")
    add_user(admin, "erin", email="erin@example.com")
    add_user(admin, "erin2", email="ERIN@example.com")
    assert index.iam_user_for("U0DAVE", None) is None
    assert index.iam_user_for("U0ERIN", "erin@example.com") is None


def test_hits_do_not_call_aws(index: IamUserIndex, people: None) -> None:
    assert index.iam_user_for("U0ALICE", None) == "alice"
    calls = index.api_calls
    for _ in range(100):
        assert index.iam_user_for("U0ALICE", None) == "alice"
        assert index.iam_user_for("U0CAROL", "carol@example.com") == "carol"
    assert calls == 1
    assert index.api_calls == calls


def test_user_added_later_is_found_by_refresh_on_miss(
    index: IamUserIndex, admin: BaseClient, clock: FakeClock, people: None
) -> None:
    assert index.iam_user_for("U0FRANK", None) is None
    assert index.api_calls == 1
    add_user(admin, "frank", slack_user_id="U0FRANK")
    clock.now += 30
    assert index.iam_user_for("U0FRANK", None) == "frank"
    assert index.api_calls == 2


def test_misses_within_interval_do_not_call_aws(
    index: IamUserIndex, admin: BaseClient, clock: FakeClock, people: None
) -> None:
    index.refresh()
    assert index.api_calls == 1
    add_user(admin, "frank", slack_user_id="U0FRANK")
    for _ in range(50):
        clock.now += 0.5
        assert index.iam_user_for("U0NOBODY", "nobody@example.com") is None
    assert index.iam_user_for("U0FRANK", None) is None  # not yet: 25s since the refresh
    assert index.api_calls == 1
    clock.now += 5
    assert index.iam_user_for("U0FRANK", None) == "frank"
    assert index.api_calls == 2


def test_concurrent_misses_refresh_once(index: IamUserIndex, people: None) -> None:
    start = threading.Barrier(16)
    results: list[str | None] = []

    def look_up() -> None:
        start.wait()
        results.append(index.iam_user_for("U0NOBODY", None))

    threads = [threading.Thread(target=look_up) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 16
    assert index.api_calls == 1


def test_refresh_drops_untagged_and_deleted_users(
    index: IamUserIndex, admin: BaseClient, people: None
) -> None:
    assert index.iam_user_for("U0ALICE", None) == "alice"
    admin.untag_user(UserName="alice", TagKeys=["slack-user-id"])
    admin.delete_user(UserName="svc-ci")
    index.refresh()
    assert index.iam_user_for("U0ALICE", None) is None
    assert index.iam_user_for("U0ALICE", "alice@example.com") == "alice"
    assert index.size == 2


def test_groups_of(index: IamUserIndex, people: None) -> None:
    index.refresh()
    assert index.groups_of("alice") == {"prod-admins", "readers"}
    assert index.groups_of("carol") == set()
    assert index.groups_of("nobody") == set()


def test_many_users_are_all_indexed(index: IamUserIndex, admin: BaseClient) -> None:
    for n in range(150):
        add_user(admin, f"user{n:03}", slack_user_id=f"U{n:08}", email=f"user{n}@example.com")
    index.refresh()
    assert index.size == 150
    assert all(index.iam_user_for(f"U{n:08}", None) == f"user{n:03}" for n in range(150))
    # moto answers get_account_authorization_details in one page (it ignores MaxItems);
    # following the Marker is covered by test_refresh_follows_pages below.
    assert index.api_calls == 1


def page(names: list[str], marker: str | None = None) -> dict:
    users = [
        {
            "UserName": name,
            "Tags": [{"Key": "slack-user-id", "Value": f"U{name.upper()}"}],
            "GroupList": ["readers"],
        }
        for name in names
    ]
    more = {"IsTruncated": True, "Marker": marker} if marker else {"IsTruncated": False}
    return {"UserDetailList": users, **more}


def test_refresh_follows_pages(iam: BaseClient, clock: FakeClock) -> None:
    index = IamUserIndex(iam, clock=clock)
    with Stubber(iam) as stub:
        op = "get_account_authorization_details"
        asked = {"Filter": ["User"], "MaxItems": 1000}  # IAM's most a page
        stub.add_response(op, page(["ann", "ben"], marker="m1"), asked)
        stub.add_response(op, page(["cid"], marker="m2"), {**asked, "Marker": "m1"})
        stub.add_response(op, page(["dee"]), {**asked, "Marker": "m2"})
        index.refresh()
        stub.assert_no_pending_responses()
    assert index.api_calls == 3
    assert index.size == 4
    assert index.iam_user_for("UDEE", None) == "dee"
    assert index.groups_of("ann") == {"readers"}


def test_failed_refresh_raises_and_is_retried(
    iam: BaseClient, clock: FakeClock, people: None
) -> None:
    index = IamUserIndex(iam, clock=clock)
    with Stubber(iam) as stub:
        stub.add_client_error("get_account_authorization_details", "ServiceFailure")
        with pytest.raises(ProviderError, match="listing IAM users") as caught:
            index.iam_user_for("U0ALICE", None)
    assert caught.value.retryable is True
    # Not stamped as refreshed: the next miss asks AWS again instead of answering "unknown".
    assert index.iam_user_for("U0ALICE", None) == "alice"


def test_only_users_under_the_grantable_path_are_matched(iam: BaseClient, admin: BaseClient,
                                                          clock: FakeClock) -> None:
    admin.create_user(UserName="alice", Path="/people/",
                      Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    admin.create_user(UserName="deployer", Path="/service/",
                      Tags=[{"Key": "slack-user-id", "Value": "U0BOT"}])
    index = IamUserIndex(iam, clock=clock, grantable_path="/people/")
    assert index.iam_user_for("U0ALICE", None) == "alice"
    assert index.iam_user_for("U0BOT", None) is None  # not grantable: the policy allows /people/
    assert index.tags_of("deployer") == {"slack-user-id": "U0BOT"}  # hygiene still sees it
