"""The audit trail for machines: `accessbot audit export` (JSON lines or CSV, for a SIEM),
and the daily files uploaded to audit.s3_bucket (the "audit-s3-export" job).

Rows are streamed (yield_per), oldest first by seq; rows not sealed yet follow, in id
order, with an empty seq and hash. Nothing here writes to the audit trail.
"""

import csv
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, time, timedelta
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accessbot.models import AuditEvent, AuditExport
from accessbot.services.audit_chain import BATCH, utc_text
from accessbot.services.catalog import Audit
from accessbot.services.errors import InvalidInput
from accessbot.services.ports import AuditArchive
from accessbot.services.spreadsheet import cell

log = logging.getLogger(__name__)

FIELDS = ("seq", "id", "at", "actor", "action", "request_id", "grant_id", "finding_id",
          "detail", "prev_hash", "hash")
FORMATS = ("jsonl", "csv")


def parse_since(text: str) -> datetime:
    """--since: a date (2026-12-01, midnight UTC) or an ISO 8601 time (UTC unless it says)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since: '{text}' is not a date (2026-12-01) or an ISO 8601 "
                           "time (2026-12-01T09:30:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rows(session: Session, since: datetime | None = None, until: datetime | None = None
         ) -> Iterator[dict]:
    """The rows with `at` in [since, until), sealed by seq then unsealed by id, as dicts
    of FIELDS (times as ISO 8601 UTC)."""
    columns = [getattr(AuditEvent, name) for name in FIELDS]
    window = []
    if since is not None:
        window.append(AuditEvent.at >= since)
    if until is not None:
        window.append(AuditEvent.at < until)
    for sealed in (True, False):
        query = (select(*columns).where(*window, AuditEvent.seq.is_not(None)).order_by(
            AuditEvent.seq) if sealed else select(*columns).where(
            *window, AuditEvent.seq.is_(None)).order_by(AuditEvent.id))
        for row in session.execute(query.execution_options(yield_per=BATCH)):
            found = row._asdict()
            found["at"] = utc_text(found["at"])
            yield found


def write(found: Iterable[dict], out: TextIO, form: str) -> int:
    """Write the rows as JSON lines or CSV (with a header); the number written."""
    count = 0
    if form == "csv":
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in found:  # a spreadsheet's cells: what people typed is never a formula
            writer.writerow({k: "" if v is None else cell(v) if isinstance(v, str) else v
                             for k, v in row.items()})
            count += 1
        return count
    for row in found:
        out.write(json_line(row))
        count += 1
    return count


def json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


# -- the daily files in S3 ---------------------------------------------------------------

SETTLE = timedelta(minutes=15)  # after a day ends: its last transactions have committed
DAYS_PER_RUN = 31               # a long outage is caught up over a few runs


class AuditArchiver:
    """Uploads each complete UTC day of the trail once, as <prefix>YYYY/MM/DD.jsonl: only
    once every row of that day is sealed; days missed while the bot was down are caught up,
    and a day without rows is an empty file (the day was not forgotten)."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]],
                 archive: AuditArchive, settings: Audit, clock: Callable[[], datetime]):
        self.transaction = transaction
        self.archive = archive
        self.settings = settings
        self.clock = clock

    def key(self, day: date) -> str:
        return f"{self.settings.s3_prefix}{day:%Y/%m/%d}.jsonl"

    def export_days(self) -> dict:
        now = self.clock()
        last_complete = (now - SETTLE).date() - timedelta(days=1)
        exported, waiting = [], None
        with self.transaction() as session:
            first = _first_day_to_export(session)
        day = first
        while day is not None and day <= last_complete and len(exported) < DAYS_PER_RUN:
            with self.transaction() as session:
                if session.get(AuditExport, day) is not None:  # another process did it
                    day += timedelta(days=1)
                    continue
                start = datetime.combine(day, time(), UTC)
                end = start + timedelta(days=1)
                unsealed = session.scalar(select(func.count()).where(
                    AuditEvent.seq.is_(None), AuditEvent.at < end))
                if unsealed:  # this day, or an earlier one still being sealed: later
                    waiting = day
                    break
                body, count, last_hash = _day_file(session, start, end)
            # upload, then remember: a crash between the two uploads the same bytes again
            self.archive.put(self.key(day), body)
            with self.transaction() as session:
                if session.get(AuditExport, day) is None:
                    session.add(AuditExport(day=day, key=self.key(day), rows=count,
                                            last_hash=last_hash, exported_at=self.clock()))
            exported.append(day)
            day += timedelta(days=1)
        result = {"exported": [f"{d:%Y-%m-%d}" for d in exported]}
        if waiting is not None:
            result["waiting_for_the_sealer"] = f"{waiting:%Y-%m-%d}"
        return result


def _first_day_to_export(session: Session) -> date | None:
    """The day after the last exported one; with none exported, the day of the oldest row."""
    last = session.scalar(select(func.max(AuditExport.day)))
    if last is not None:
        return last + timedelta(days=1)
    oldest = session.scalar(select(func.min(AuditEvent.at)))
    return oldest.astimezone(UTC).date() if oldest is not None else None


def _day_file(session: Session, start: datetime, end: datetime) -> tuple[bytes, int, str | None]:
    """The day's rows as JSON lines, by seq; their number, and the last one's hash."""
    lines, last_hash = [], None
    for row in rows(session, start, end):
        lines.append(json_line(row))
        last_hash = row["hash"]
    return "".join(lines).encode(), len(lines), last_hash
