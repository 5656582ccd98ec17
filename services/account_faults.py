"""Accounts whose role cannot be assumed: remembered until a call there works again, so
that the admin channel hears once per outage (and once when it is over), not per grant."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from accessbot.models import AccountFault
from accessbot.services import messages


def failed(session: Session, account_id: str, error: str, now: datetime) -> None:
    """Its role was refused (or did not answer); tells the admins if this starts an outage."""
    fault = session.get(AccountFault, account_id, with_for_update=True)
    if fault is not None:
        fault.last_error = error[:2000]
        return
    session.add(AccountFault(account_id=account_id, since=now, last_error=error[:2000]))
    messages.admin_alert(session, f":rotating_light: AWS account {account_id}: accessbot "
                         f"cannot assume its role ({error[:500]}). Its grants and revocations "
                         "are retried; you will hear here when it answers again.", now)


def answered(session: Session, account_ids: Iterable[str], now: datetime) -> None:
    """Calls in these accounts worked: an outage of any of them is over."""
    ids = {a for a in account_ids if a}
    if not ids:
        return
    over = session.scalars(select(AccountFault.account_id).where(
        AccountFault.account_id.in_(ids))).all()
    if not over:
        return
    session.execute(delete(AccountFault).where(AccountFault.account_id.in_(over)))
    for account_id in sorted(over):
        messages.admin_alert(session, f":white_check_mark: AWS account {account_id} answers "
                             "again: accessbot can assume its role.", now)
