"""`accessbot doctor`: one line per live check, ✓ or ✗ with what to do."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str      # what was checked, and what was found
    fix: str = ""  # for a ✗: what to do about it

    def line(self) -> str:
        if self.ok:
            return f"✓ {self.what}"
        return f"✗ {self.what}" + (f": {self.fix}" if self.fix else "")


def passed(checks: list[Check]) -> bool:
    return all(check.ok for check in checks)
