"""The audit trail's hash chain: sealed by one sealer at a time, and `audit verify` finds an
edited, a deleted and a reordered row (SQLite and Postgres)."""

import threading

import pytest
from sqlalchemy import delete, select, update

from accessbot.models import AuditChain, AuditEvent, transaction
from accessbot.services import audit, audit_chain
from accessbot.services.audit import SYSTEM, Action
from accessbot.services.audit_chain import GENESIS, ProblemKind


def record(sessions, clock, count: int, detail: str = "event") -> None:
    with transaction(sessions) as session:
        for n in range(count):
            audit.record(session, clock.advance(seconds=1), SYSTEM, Action.WARNED,
                         grant_id=n, detail=f"{detail} {n}")


def seal(sessions) -> dict:
    return audit_chain.seal_pending(lambda: transaction(sessions))


def chain(sessions) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def verify(sessions) -> audit_chain.Verification:
    with sessions() as session:
        return audit_chain.verify(session)


@pytest.fixture
def sealed(sessions, clock) -> list[AuditEvent]:
    """Five rows, sealed."""
    record(sessions, clock, 5)
    assert seal(sessions) == {"sealed": 5}
    return chain(sessions)


def test_the_sealer_chains_rows_in_id_order_and_verify_passes(sessions, sealed, clock):
    assert [row.seq for row in sealed] == [1, 2, 3, 4, 5]
    assert sealed[0].prev_hash == GENESIS
    assert [row.prev_hash for row in sealed[1:]] == [row.hash for row in sealed[:-1]]
    assert all(audit_chain.row_hash(row.prev_hash, row) == row.hash for row in sealed)
    with sessions() as session:
        head = session.get(AuditChain, 1)
        assert (head.last_seq, head.last_hash) == (5, sealed[-1].hash)

    record(sessions, clock, 2, "later")
    result = verify(sessions)
    assert result.intact and (result.sealed, result.unsealed) == (5, 2)
    assert result.newest_unsealed_at == clock()

    assert seal(sessions) == {"sealed": 2}
    assert seal(sessions) == {"sealed": 0}
    result = verify(sessions)
    assert result.intact and (result.sealed, result.unsealed) == (7, 0)
    assert [row.seq for row in chain(sessions)] == list(range(1, 8))


def test_the_hash_covers_the_content_and_the_previous_hash(sealed):
    row = sealed[2]
    assert audit_chain.row_hash(row.prev_hash, row) == row.hash
    assert audit_chain.row_hash(sealed[0].hash, row) != row.hash
    assert '"at":"2026-11-28T09:00:03.000000+00:00"' in audit_chain.canonical(row)


def test_an_edited_row_is_named(sessions, sealed):
    with transaction(sessions) as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == sealed[2].id)
                        .values(detail="nothing to see"))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.EDITED and problem.ids == (sealed[2].id,)
    assert problem.text == (f"#3 (id {sealed[2].id}) was edited: its content no longer "
                            "gives its hash")


def test_an_edited_row_whose_hash_was_recomputed_breaks_the_next_link(sessions, sealed):
    edited = sealed[1]
    edited.detail = "nothing to see"
    with transaction(sessions) as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == edited.id).values(
            detail=edited.detail, hash=audit_chain.row_hash(edited.prev_hash, edited)))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.MISSING
    assert problem.text == (f"a row is missing between #2 (id {edited.id}) and "
                            f"#3 (id {sealed[2].id})")


def test_a_deleted_row_is_a_gap_between_its_neighbours(sessions, sealed):
    with transaction(sessions) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id == sealed[2].id))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.MISSING
    assert problem.text == (f"a row is missing between #2 (id {sealed[1].id}) and "
                            f"#4 (id {sealed[3].id})")


def test_a_deleted_first_row_is_missing_after_the_start(sessions, sealed):
    with transaction(sessions) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id == sealed[0].id))
    [problem] = verify(sessions).problems
    assert problem.text == f"a row is missing between the start of the chain and #2 (id " \
                           f"{sealed[1].id})"


def test_a_deleted_row_with_the_later_rows_renumbered_is_still_found(sessions, sealed):
    with transaction(sessions) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id == sealed[2].id))
        for row in sealed[3:]:
            session.execute(update(AuditEvent).where(AuditEvent.id == row.id)
                            .values(seq=row.seq - 1))
        session.execute(update(AuditChain).values(last_seq=4))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.MISSING
    assert problem.text == (f"a row is missing between #2 (id {sealed[1].id}) and "
                            f"#3 (id {sealed[3].id})")


def test_rows_deleted_at_the_end_are_found_through_the_head(sessions, sealed):
    with transaction(sessions) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id.in_([sealed[3].id,
                                                                     sealed[4].id])))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.HEAD and problem.ids == (sealed[2].id,)
    assert problem.text == (f"rows are missing at the end: the chain's head is #5, the last "
                            f"row is #3 (id {sealed[2].id})")


def test_a_reordered_row_names_where_it_was_chained(sessions, sealed):
    second, third = sealed[1], sealed[2]
    with transaction(sessions) as session:  # swap #2 and #3 (seq is unique: via a spare)
        session.execute(update(AuditEvent).where(AuditEvent.id == second.id).values(seq=-1))
        session.execute(update(AuditEvent).where(AuditEvent.id == third.id).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.id == second.id).values(seq=3))
    problems = verify(sessions).problems
    assert {p.kind for p in problems} == {ProblemKind.REORDERED}
    first, fourth = sealed[0], sealed[3]
    assert [p.text for p in problems] == [
        f"#2 (id {third.id}) is out of place: it was chained after #3 (id {second.id}), not "
        f"after #1 (id {first.id})",
        f"#3 (id {second.id}) is out of place: it was chained after #1 (id {first.id}), not "
        f"after #2 (id {third.id})",
        f"#4 (id {fourth.id}) is out of place: it was chained after #2 (id {third.id}), not "
        f"after #3 (id {second.id})",
    ]


def test_a_row_with_a_smaller_id_committed_later_is_sealed_later(sessions, sealed, clock):
    """On Postgres, ids are handed out before commit: a late row gets the next seq."""
    with transaction(sessions) as session:
        session.add(AuditEvent(id=sealed[0].id - 1, at=clock(), actor=SYSTEM,
                               action=Action.WARNED.value, detail="late"))
    assert seal(sessions) == {"sealed": 1}
    late = next(row for row in chain(sessions) if row.detail == "late")
    assert (late.seq, late.prev_hash) == (6, sealed[-1].hash)
    assert verify(sessions).intact


def test_a_sealer_that_saw_an_older_head_writes_nothing(sessions, engine, clock):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writing transactions (BEGIN IMMEDIATE): no race")
    record(sessions, clock, 1)
    assert seal(sessions) == {"sealed": 1}
    with sessions() as late, late.begin():
        seen = late.get(AuditChain, 1)  # the head before the other's commit
        record(sessions, clock, 3)
        assert seal(sessions) == {"sealed": 3}
        record(sessions, clock, 1)
        assert audit_chain.seal(late) is None
        assert seen.last_seq == 1
        late.rollback()
    result = verify(sessions)
    assert result.intact and (result.sealed, result.unsealed) == (4, 1)


def test_sealers_racing_on_many_rows_build_one_chain(sessions, clock):
    record(sessions, clock, 2 * audit_chain.BATCH + 10)
    start = threading.Barrier(3)
    results = []

    def race():
        start.wait()
        results.append(seal(sessions))

    threads = [threading.Thread(target=race) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while seal(sessions)["sealed"]:  # a sealer that lost stops; the next run goes on
        pass
    result = verify(sessions)
    assert result.intact and (result.sealed, result.unsealed) == (2 * audit_chain.BATCH + 10, 0)


def test_without_a_head_an_empty_chain_starts_and_a_sealed_one_stops(sessions, clock):
    with transaction(sessions) as session:
        session.execute(delete(AuditChain))
    record(sessions, clock, 2)
    assert seal(sessions) == {"sealed": 2}
    assert verify(sessions).intact
    with transaction(sessions) as session:
        session.execute(delete(AuditChain))
    [problem] = verify(sessions).problems
    assert problem.kind is ProblemKind.HEAD
    record(sessions, clock, 1)
    with pytest.raises(audit_chain.Conflict):
        seal(sessions)
    assert chain(sessions)[-1].seq is None
