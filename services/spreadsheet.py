"""Text for a CSV cell that a person may open in a spreadsheet."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: str) -> str:
    """No formula injection: a value that a spreadsheet would take for a formula (one that
    begins with = + - @, a tab or a carriage return: a reason typed as
    `=HYPERLINK("https://…")`, say) gets a leading ', and is shown as text."""
    return "'" + value if value[:1] in FORMULA_STARTS else value
