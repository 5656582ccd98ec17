"""An in-memory fake of the role-hygiene port (services.ports.RoleSource)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from accessbot.services.ports import ProviderError
from accessbot.services.role_hygiene import RoleFacts

ACCOUNT = "123456789012"


def trust(principal) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}


def trust_json(principal) -> str:
    return json.dumps(trust(principal))


def role(name: str, created: datetime, *, used: datetime | None = None,
         principal=None, session: int = 3600, tags: dict[str, str] | None = None,
         path: str = "/") -> RoleFacts:
    """A role trusting EC2 unless told otherwise."""
    return RoleFacts(name=name, arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}", path=path,
                     created=created, last_used=used,
                     last_used_region="eu-west-1" if used else None,
                     trust_policy=trust(principal or {"Service": "ec2.amazonaws.com"}),
                     max_session=session, tags=dict(tags or {}))


@dataclass
class FakeRoles:
    """The account's roles (`known`); `refuse` makes every call fail as IAM's
    AccessDenied would."""

    known: list[RoleFacts] = field(default_factory=list)
    refuse: bool = False
    calls: list[tuple] = field(default_factory=list)

    def _check(self, *call) -> None:
        self.calls.append(call)
        if self.refuse:
            raise ProviderError("AWS IAM refused reading IAM roles (AccessDenied)")

    def roles(self) -> list[RoleFacts]:
        self._check("roles")
        return list(self.known)

    def max_session(self, name: str) -> int | None:
        self._check("max_session", name)
        found = next((r for r in self.known if r.name == name), None)
        return None if found is None else found.max_session

    def cap_session(self, name: str, seconds: int) -> bool:
        self._check("cap_session", name, seconds)
        if all(r.name != name for r in self.known):
            return False
        self.known = [replace(r, max_session=seconds) if r.name == name else r
                      for r in self.known]
        return True

    def set(self, name: str, **changes) -> None:
        self.known = [replace(r, **changes) if r.name == name else r for r in self.known]

    def remove(self, name: str) -> None:
        self.known = [r for r in self.known if r.name != name]
