"""Small builders for the service tests: catalogs, requests and grants in a given state,
and read-backs that look at the database in a fresh session."""

import copy
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from accessbot.models import AccessRequest, AuditEvent, Grant
from accessbot.services import extensions, grants, requests
from accessbot.services.catalog import Catalog, parse_catalog
from accessbot.services.commands import ExtensionDraft, make_draft
from tests.conftest import CATALOG

REQUESTER = "U0ALICE"
IAM_USER = "alice"
APPROVER = "U0BOB"
OTHER_APPROVER = "U0DAVE"
STRANGER = "U0EVE"
RESOURCE = "prod-admins"
TWO_HOURS = timedelta(hours=2)


def someone(n: int) -> dict[str, str]:
    """Another requester with their own IAM user: one live grant per user and target."""
    return {"requester": f"U0USER{n}", "iam_user": f"user{n}"}


def make_catalog(resources: dict[str, dict] | None = None, **top: Any) -> Catalog:
    """The conftest catalog with some resource settings or top-level keys changed."""
    raw = copy.deepcopy(CATALOG)
    for name, changes in (resources or {}).items():
        raw["resources"].setdefault(name, {}).update(changes)
    raw.update(top)
    return parse_catalog(raw)


def create_request(sessions, catalog: Catalog, now: datetime, *, requester: str = REQUESTER,
                   resource: str = RESOURCE, duration: timedelta = TWO_HOURS,
                   reason: str = "deploying hotfix 123",
                   iam_user: str | None = IAM_USER) -> int:
    """A PENDING request, with its IAM user already resolved unless iam_user=None."""
    draft = make_draft(catalog, requester, resource, f"{int(duration.total_seconds())}s",
                       reason)
    with sessions() as session, session.begin():
        request_id = requests.create_request(session, catalog, requester, draft, now).id
        if iam_user is not None:
            set_iam_user(session, request_id, iam_user)
    return request_id


def set_iam_user(session, request_id: int, iam_user: str) -> None:
    """The requester's IAM user found, the request not yet announced (the worker sets both
    at once, in requests.mark_announced)."""
    session.execute(update(AccessRequest).where(AccessRequest.id == request_id)
                    .values(iam_user=iam_user))


def approve(sessions, catalog: Catalog, request_id: int, now: datetime,
            approver: str = APPROVER) -> int:
    with sessions() as session, session.begin():
        return requests.approve(session, catalog, request_id, approver, now).id


def approved_grant(sessions, catalog: Catalog, now: datetime, **request_args: Any) -> int:
    """A PENDING grant (approved, not yet applied) whose clock starts at `now`."""
    return approve(sessions, catalog, create_request(sessions, catalog, now, **request_args), now)


def active_grant(sessions, catalog: Catalog, now: datetime, **request_args: Any) -> int:
    """An ACTIVE grant, applied at `now` by a worker called 'setup'."""
    grant_id = approved_grant(sessions, catalog, now, **request_args)
    with sessions() as session, session.begin():
        assert grants.claim_to_grant(session, grant_id, "setup", now) is not None
        assert grants.finish_grant(session, grant_id, "setup", now, None) is not None
    return grant_id


def ask_for_more_time(sessions, catalog: Catalog, grant_id: int, now: datetime,
                      duration: timedelta | None = timedelta(minutes=30), *,
                      requester: str = REQUESTER, reason: str = "the migration runs long") -> int:
    """A PENDING extension request for a live grant (duration None: the default)."""
    draft = ExtensionDraft(grant_id=grant_id, duration=duration, reason=reason)
    with sessions() as session, session.begin():
        return extensions.request_extension(session, catalog, requester, draft, now).id


def load(sessions, model, row_id: int):
    """The row as the database has it now, read in a fresh session."""
    with sessions() as session:
        return session.get(model, row_id)


def load_request(sessions, request_id: int) -> AccessRequest:
    return load(sessions, AccessRequest, request_id)


def load_grant(sessions, grant_id: int) -> Grant:
    return load(sessions, Grant, grant_id)


def grants_of(sessions, request_id: int) -> list[Grant]:
    with sessions() as session:
        return list(session.scalars(select(Grant).where(Grant.request_id == request_id)))


def audit_trail(sessions, *, request_id: int | None = None,
                grant_id: int | None = None) -> list[tuple[str, str]]:
    """(actor, action) of the audit events about a request or grant, oldest first."""
    query = select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
    if request_id is not None:
        query = query.where(AuditEvent.request_id == request_id)
    if grant_id is not None:
        query = query.where(AuditEvent.grant_id == grant_id)
    with sessions() as session:
        return [tuple(row) for row in session.execute(query)]


def count(sessions, model, *conditions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))
