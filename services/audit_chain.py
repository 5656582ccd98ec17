"""The audit trail's hash chain: sealing new rows onto it, and verifying it.

`audit.record()` only inserts a row (no lock: every state change records one). The sealer
(the "seal-audit" job) gives the unsealed rows, in id order, their place in the chain:
`seq` (1, 2, 3 … without gaps), `prev_hash` (the previous sealed row's hash, GENESIS for
the first) and `hash` = SHA-256 over prev_hash and the row's canonical content. The head
(`audit_chain`, one row) is advanced compare-and-set before the rows are written, so of two
sealers (any replica, SQLite or Postgres) one extends the chain and the other rolls back.
On Postgres a row with a smaller id may commit after a larger one was sealed: it is sealed
by a later run, with a higher seq. The chain's order is seq.
"""

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessbot.models import AuditChain, AuditEvent
from accessbot.services.errors import Conflict

GENESIS = "0" * 64  # the first row's prev_hash
HEAD_ID = 1
BATCH = 200  # rows sealed in one transaction (8 ms; 1,000 took 34-67 ms): on SQLite an
             # acknowledgement waits for the write lock meanwhile
CONTENT = ("id", "at", "actor", "action", "request_id", "grant_id", "finding_id", "detail")


def utc_text(moment: datetime) -> str:
    """An instant as ISO 8601 UTC, to the microsecond: one spelling for one instant."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row) -> str:
    """The row's content as JSON with sorted keys: what its hash covers (with prev_hash)."""
    content = {name: getattr(row, name) for name in CONTENT}
    content["at"] = utc_text(row.at)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, row) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


# -- sealing ------------------------------------------------------------------------------

def seal(session: Session, limit: int = BATCH) -> int | None:
    """Chain up to `limit` unsealed rows; the number sealed, or None when another sealer
    moved the head first (roll the transaction back: this one wrote nothing)."""
    head = session.get(AuditChain, HEAD_ID)
    rows = list(session.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None))
                                .order_by(AuditEvent.id).limit(limit)))
    if not rows:
        return 0
    seq, last_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS)
    chained = []
    for row in rows:
        seq += 1
        chained.append((row, seq, last_hash, row_hash(last_hash, row)))
        last_hash = chained[-1][3]
    if not _advance_head(session, head, seq, last_hash):
        return None
    for row, row_seq, prev_hash, hashed in chained:
        row.seq, row.prev_hash, row.hash = row_seq, prev_hash, hashed
    session.flush()
    return len(chained)


class _Lost(Exception):
    """Another sealer moved the head first: this transaction is rolled back."""


def seal_pending(transaction: Callable[[], AbstractContextManager[Session]],
                 batches: int = 100) -> dict:
    """Seal what is waiting, a batch a transaction (the "seal-audit" job)."""
    sealed = 0
    for _ in range(batches):
        try:
            with transaction() as session:
                count = seal(session)
                if count is None:
                    raise _Lost
        except _Lost:
            return {"sealed": sealed, "lost_to_another_sealer": True}
        sealed += count
        if count < BATCH:
            break
    return {"sealed": sealed}


def _advance_head(session: Session, head: AuditChain | None, seq: int, last_hash: str) -> bool:
    """Move the head from what this sealer saw to (seq, last_hash); False if another sealer
    moved it meanwhile. First, so that a losing sealer waits here and writes no row."""
    if head is None:  # a database emptied by hand: the first sealer creates it again
        if session.scalar(select(AuditEvent.id).where(AuditEvent.seq.is_not(None)).limit(1)):
            raise Conflict("the audit chain's head (audit_chain) is missing but rows are "
                           "sealed: nothing more is sealed; run `accessbot audit verify`")
        try:
            with session.begin_nested():
                session.add(AuditChain(id=HEAD_ID, last_seq=seq, last_hash=last_hash))
        except IntegrityError:  # another sealer created it first
            return False
        return True
    seen = head.last_seq
    result = session.execute(update(AuditChain)
                             .where(AuditChain.id == HEAD_ID, AuditChain.last_seq == seen)
                             .values(last_seq=seq, last_hash=last_hash)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1


# -- verifying ----------------------------------------------------------------------------

class ProblemKind(StrEnum):
    EDITED = "edited"        # the content no longer gives the row's hash
    MISSING = "missing"      # a gap in seq, or a link to a hash that is nowhere
    REORDERED = "reordered"  # the link points to another row of the chain
    HEAD = "head"            # the head does not match the last row (rows deleted at the end)


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    text: str
    ids: tuple[int, ...] = ()  # the rows it names (audit_events.id)


@dataclass
class Verification:
    sealed: int = 0
    unsealed: int = 0
    newest_unsealed_at: datetime | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


LOOKUPS = 50  # at most this many searches for where a misplaced link points


@dataclass(frozen=True)
class _Link:
    seq: int
    id: int | None
    hash: str

    def name(self) -> str:
        return "the start of the chain" if self.id is None else f"#{self.seq} (id {self.id})"


def verify(session: Session) -> Verification:
    """Walk the chain by seq; every problem found, each naming its rows."""
    result = Verification()
    previous = _Link(0, None, GENESIS)
    lookups = LOOKUPS
    columns = [getattr(AuditEvent, name) for name in CONTENT] + [
        AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash]
    rows = session.execute(select(*columns).where(AuditEvent.seq.is_not(None))
                           .order_by(AuditEvent.seq).execution_options(yield_per=BATCH))
    for row in rows:
        result.sealed += 1
        here = _Link(row.seq, row.id, row.hash or "")
        if row.hash is None or row.prev_hash is None or row_hash(row.prev_hash, row) != row.hash:
            result.problems.append(Problem(
                ProblemKind.EDITED, f"{here.name()} was edited: its content no longer gives "
                "its hash", (row.id,)))
        if row.seq != previous.seq + 1:
            result.problems.append(_missing(previous, here))
        elif row.prev_hash != previous.hash:
            found = None
            if lookups > 0:
                lookups -= 1
                found = _holder_of(session, row.prev_hash, previous)
            result.problems.append(_misplaced(previous, here, found) if found
                                   else _missing(previous, here))
        previous = here
    _check_head(session, previous, result)
    result.unsealed, result.newest_unsealed_at = session.execute(
        select(func.count(), func.max(AuditEvent.at)).where(AuditEvent.seq.is_(None))).one()
    return result


def _missing(previous: _Link, here: _Link) -> Problem:
    return Problem(ProblemKind.MISSING, f"a row is missing between {previous.name()} and "
                   f"{here.name()}", tuple(i for i in (previous.id, here.id) if i is not None))


def _misplaced(previous: _Link, here: _Link, found: _Link) -> Problem:
    return Problem(ProblemKind.REORDERED, f"{here.name()} is out of place: it was chained "
                   f"after {found.name()}, not after {previous.name()}",
                   tuple(i for i in (here.id, found.id, previous.id) if i is not None))


def _holder_of(session: Session, hashed: str | None, previous: _Link) -> _Link | None:
    """The row of the chain whose hash a misplaced link names (a reordered row), if any."""
    if hashed is None:
        return None
    if hashed == GENESIS:
        return _Link(0, None, GENESIS) if previous.id is not None else None
    found = session.execute(select(AuditEvent.seq, AuditEvent.id, AuditEvent.hash)
                            .where(AuditEvent.hash == hashed, AuditEvent.seq.is_not(None))
                            .limit(1)).first()
    return _Link(*found) if found else None


def _check_head(session: Session, last: _Link, result: Verification) -> None:
    head = session.get(AuditChain, HEAD_ID)
    if head is None:
        if last.id is not None:
            result.problems.append(Problem(ProblemKind.HEAD, "the chain's head (audit_chain) "
                                           "is missing", ()))
        return
    if (head.last_seq, head.last_hash) != (last.seq, last.hash):
        ids = (last.id,) if last.id is not None else ()
        if head.last_seq > last.seq:
            text = (f"rows are missing at the end: the chain's head is #{head.last_seq}, the "
                    f"last row is {last.name()}")
        else:
            text = (f"the chain's head (#{head.last_seq}) does not match the last row, "
                    f"{last.name()}")
        result.problems.append(Problem(ProblemKind.HEAD, text, ids))
