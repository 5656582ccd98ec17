"""`accessbot audit verify` and `accessbot audit export`, in-process on a SQLite file: what
they print and their exit codes (the services behind them: tests/services)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from accessbot import bot
from accessbot.models import AuditEvent, make_engine, make_session_factory, transaction
from accessbot.models.migrate import upgrade
from accessbot.services import audit, audit_chain
from accessbot.services.audit import SYSTEM, Action

AT = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def record(sessions, *moments) -> None:
    with transaction(sessions) as session:
        for n, moment in enumerate(moments):
            audit.record(session, moment, SYSTEM, Action.REVOKED, grant_id=n, detail="expired")


def seal(sessions) -> None:
    audit_chain.seal_pending(lambda: transaction(sessions))


def test_verify_says_intact_in_one_line(sessions, capsys):
    record(sessions, AT, AT + timedelta(hours=1))
    seal(sessions)
    record(sessions, AT + timedelta(hours=2))
    assert bot.main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == ("audit trail intact: 2 rows sealed, 1 not sealed yet "
                                       "(newest at 2026-11-28 11:00:00 UTC)\n")


def test_verify_names_each_problem_and_exits_1(sessions, capsys):
    record(sessions, AT, AT + timedelta(hours=1), AT + timedelta(hours=2))
    seal(sessions)
    with transaction(sessions) as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="U0EVE"))
    assert bot.main(["audit", "verify"]) == 1
    assert capsys.readouterr().out == ("audit trail: #2 (id 2) was edited: its content no "
                                       "longer gives its hash\n")


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_export_writes_every_row_since_the_date_oldest_first(sessions, capsys, tmp_path, form):
    record(sessions, AT - timedelta(days=1), AT, AT + timedelta(hours=1))
    seal(sessions)
    out = tmp_path / f"trail.{form}"
    assert bot.main(["audit", "export", "--since", "2026-11-28", "--format", form,
                     "--output", str(out)]) == 0
    text = out.read_text()
    found = ([json.loads(line) for line in text.splitlines()] if form == "jsonl"
             else list(csv.DictReader(io.StringIO(text))))
    assert [str(r["seq"]) for r in found] == ["2", "3"]
    assert list(found[0]) == ["seq", "id", "at", "actor", "action", "request_id", "grant_id",
                              "finding_id", "detail", "prev_hash", "hash"]
    assert capsys.readouterr().err.endswith("audit export: 2 rows\n")


def test_export_to_standard_output_by_default(sessions, capsys):
    record(sessions, AT)
    assert bot.main(["audit", "export", "--since", "2026-11-01T00:00:00Z"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["seq"] is None and json.loads(line)["action"] == "revoked"


def test_export_with_a_bad_date_says_so_in_one_line(sessions, capsys):
    assert bot.main(["audit", "export", "--since", "yesterday"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and said.err == (
        "accessbot: audit export: --since: 'yesterday' is not a date (2026-12-01) or an ISO "
        "8601 time (2026-12-01T09:30:00Z)\n")


def test_audit_without_a_subcommand_still_prints_the_trail(sessions, capsys, monkeypatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    record(sessions, AT)
    assert bot.main(["audit", "--since", "all", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["action"] == "revoked"
