"""The audit trail for machines: the export's rows and formats, and the daily files of
audit.s3_bucket through a fake archive (SQLite and Postgres)."""

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AuditExport, transaction
from accessbot.services import audit, audit_chain, audit_export
from accessbot.services.audit import Action
from accessbot.services.audit_export import AuditArchiver, parse_since
from accessbot.services.catalog import Audit
from accessbot.services.errors import InvalidInput
from accessbot.services.ports import ProviderError

DAY = datetime(2026, 11, 28, tzinfo=UTC)


def record_at(sessions, *moments: datetime) -> None:
    with transaction(sessions) as session:
        for n, moment in enumerate(moments):
            audit.record(session, moment, "U0BOB", Action.APPROVED, request_id=n,
                         detail=f"row, “{n}”")


def seal(sessions) -> None:
    audit_chain.seal_pending(lambda: transaction(sessions))


def exported(sessions, since=None, until=None) -> list[dict]:
    with sessions() as session:
        return list(audit_export.rows(session, since, until))


def test_rows_are_sealed_by_seq_then_unsealed_by_id_with_every_field(sessions):
    record_at(sessions, DAY + timedelta(hours=2), DAY + timedelta(hours=1))
    seal(sessions)
    record_at(sessions, DAY)
    found = exported(sessions)
    assert [(r["seq"], r["at"]) for r in found] == [
        (1, "2026-11-28T02:00:00.000000+00:00"), (2, "2026-11-28T01:00:00.000000+00:00"),
        (None, "2026-11-28T00:00:00.000000+00:00")]
    assert list(found[0]) == list(audit_export.FIELDS)
    assert found[0]["prev_hash"] == audit_chain.GENESIS and found[1]["prev_hash"] == \
        found[0]["hash"]
    assert found[2]["hash"] is None
    since = exported(sessions, DAY + timedelta(hours=1))
    assert [r["seq"] for r in since] == [1, 2]


def test_jsonl_and_csv_carry_the_same_rows(sessions):
    record_at(sessions, DAY, DAY + timedelta(minutes=1))
    seal(sessions)
    record_at(sessions, DAY + timedelta(minutes=2))
    jsonl, table = io.StringIO(), io.StringIO()
    assert audit_export.write(exported(sessions), jsonl, "jsonl") == 3
    assert audit_export.write(exported(sessions), table, "csv") == 3
    as_json = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert [r["detail"] for r in as_json] == [r["detail"] for r in as_csv] == [
        "row, “0”", "row, “1”", "row, “0”"]
    assert [r["seq"] for r in as_csv] == ["1", "2", ""]
    assert as_csv[1]["hash"] == as_json[1]["hash"] and as_csv[2]["hash"] == ""


def test_in_the_csv_what_people_typed_is_never_a_formula(sessions):
    """A deny reason typed as a formula is text in a spreadsheet (a leading '); the JSON
    lines, the machines' copy, carry it exactly."""
    typed = ['=HYPERLINK("https://evil.example","Approve here")', "+1 555 0100", "-2+3",
             "@SUM(A1:A9)", "\tsplit", "fine, =not at the start"]
    with transaction(sessions) as session:
        for n, reason in enumerate(typed):
            audit.record(session, DAY, "U0BOB", Action.DENIED, request_id=n, detail=reason)
    jsonl, table = io.StringIO(), io.StringIO()
    audit_export.write(exported(sessions), jsonl, "jsonl")
    audit_export.write(exported(sessions), table, "csv")

    assert [json.loads(line)["detail"] for line in jsonl.getvalue().splitlines()] == typed
    assert [r["detail"] for r in csv.DictReader(io.StringIO(table.getvalue()))] == [
        "'" + text for text in typed[:5]] + [typed[5]]


@pytest.mark.parametrize("text, moment", [
    ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-12-01T09:30:00Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
    ("2026-12-01T09:30:00+02:00", datetime(2026, 12, 1, 7, 30, tzinfo=UTC)),
])
def test_since_is_a_date_or_a_time(text, moment):
    assert parse_since(text) == moment


def test_since_that_is_neither_says_so():
    with pytest.raises(InvalidInput, match="'last week' is not a date"):
        parse_since("last week")


# -- the daily files ------------------------------------------------------------------------

class FakeArchive:
    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.refuse = False

    def put(self, key: str, body: bytes) -> None:
        if self.refuse:
            raise ProviderError("AWS S3 refused storing it (SlowDown)")
        self.puts.append(key)
        self.objects[key] = body


@pytest.fixture
def archive():
    return FakeArchive()


@pytest.fixture
def archiver(sessions, archive, clock):
    return AuditArchiver(lambda: transaction(sessions), archive,
                         Audit(s3_bucket="evidence", s3_prefix="trail/"), clock)


def lines(archive, key) -> list[dict]:
    return [json.loads(line) for line in archive.objects[key].decode().splitlines()]


def test_each_complete_sealed_day_is_uploaded_once(sessions, archiver, archive, clock):
    record_at(sessions, DAY + timedelta(hours=9), DAY + timedelta(hours=23, minutes=59),
              DAY + timedelta(days=1, hours=1))
    seal(sessions)
    clock.now = DAY + timedelta(days=1, minutes=14)  # the day ended, not settled yet
    assert archiver.export_days() == {"exported": []}

    clock.now = DAY + timedelta(days=1, minutes=15)
    assert archiver.export_days() == {"exported": ["2026-11-28"]}
    day = lines(archive, "trail/2026/11/28.jsonl")
    assert [r["seq"] for r in day] == [1, 2]
    with sessions() as session:
        [done] = session.scalars(select(AuditExport)).all()
    assert (done.day, done.key, done.rows, done.last_hash) == (
        date(2026, 11, 28), "trail/2026/11/28.jsonl", 2, day[-1]["hash"])

    assert archiver.export_days() == {"exported": []}
    assert archive.puts == ["trail/2026/11/28.jsonl"]


def test_a_day_waits_until_its_rows_are_sealed(sessions, archiver, archive, clock):
    record_at(sessions, DAY + timedelta(hours=9))
    clock.now = DAY + timedelta(days=2, hours=1)
    assert archiver.export_days() == {"exported": [], "waiting_for_the_sealer": "2026-11-28"}
    assert archive.puts == []
    seal(sessions)
    assert archiver.export_days() == {"exported": ["2026-11-28", "2026-11-29"]}


def test_days_missed_while_down_are_caught_up_and_an_empty_day_is_an_empty_file(
        sessions, archiver, archive, clock):
    record_at(sessions, DAY + timedelta(hours=1), DAY + timedelta(days=3, hours=1))
    seal(sessions)
    clock.now = DAY + timedelta(days=4, hours=3)
    assert archiver.export_days() == {"exported": ["2026-11-28", "2026-11-29", "2026-11-30",
                                                   "2026-12-01"]}
    assert archive.objects["trail/2026/11/29.jsonl"] == b""
    assert [r["at"] for r in lines(archive, "trail/2026/12/01.jsonl")] == [
        "2026-12-01T01:00:00.000000+00:00"]
    record_at(sessions, DAY + timedelta(days=4, hours=5))
    seal(sessions)
    clock.now = DAY + timedelta(days=7)
    assert archiver.export_days()["exported"] == ["2026-12-02", "2026-12-03"]  # not settled: 12-04


def test_an_upload_refused_is_not_remembered_and_is_tried_again(sessions, archiver, archive,
                                                                clock):
    record_at(sessions, DAY + timedelta(hours=1))
    seal(sessions)
    clock.now = DAY + timedelta(days=1, hours=1)
    archive.refuse = True
    with pytest.raises(ProviderError):
        archiver.export_days()
    with sessions() as session:
        assert session.scalars(select(AuditExport)).all() == []
    archive.refuse = False
    assert archiver.export_days() == {"exported": ["2026-11-28"]}


def test_nothing_recorded_nothing_uploaded(archiver, archive, clock):
    assert archiver.export_days() == {"exported": []}
    assert archive.puts == []
