"""Reading bulk-import files into Segment messages; no Django in here.

Two kinds of file, plain or gzip-compressed (recognised by its magic bytes,
not its name):

- NDJSON: one Segment message per line, as an export from Segment or
  RudderStack writes them.
- CSV of people, as CRM exports are: a ``user_id`` column; every other
  non-empty cell becomes a trait of that person (an ``identify``).

A line that cannot be read is yielded as a ``Rejected`` with its line number
and reason, so one bad line never stops an import.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson

from tracking.messages import json_loads

GZIP_MAGIC = b"\x1f\x8b"
CSV_ID_COLUMN = "user_id"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (missing, or a CSV without ``user_id``)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a message. ``reason`` is short and shared (it groups the quarantine);
    ``detail`` says exactly what is wrong with this line."""

    line: int
    reason: str
    detail: str
    raw: str


class ImportFile:
    """An open import file: its kind, its messages, and how far reading has got (in file bytes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ImportFileError(f"{self.path}: no such file")
        self.size = self.path.stat().st_size
        self._raw: IO[bytes] = self.path.open("rb")
        self.compressed = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="rb")) if self.compressed else self._raw
        self.kind = self._sniff_kind()
        self._text: io.TextIOWrapper | None = None

    def _sniff_kind(self) -> str:
        suffixes = [suffix.lower() for suffix in self.path.suffixes]
        if ".csv" in suffixes:
            return "csv"
        if {".ndjson", ".jsonl", ".json"} & set(suffixes):
            return "ndjson"
        head = self._stream.peek(64)[:64] if hasattr(self._stream, "peek") else b""
        return "ndjson" if head.lstrip().startswith(b"{") else "csv"

    @property
    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for gzip)."""
        return self._raw.tell()

    def close(self) -> None:
        if self._text is not None:
            self._text.detach()
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> ImportFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self) -> Iterator[dict[str, Any] | Rejected]:
        if self.kind == "csv":
            # Held on self: a wrapper that is garbage-collected closes the file under us.
            self._text = io.TextIOWrapper(self._stream, encoding="utf-8-sig", newline="")
            return people_csv_messages(self._text)
        return ndjson_messages(self._stream)


def ndjson_messages(stream: IO[bytes]) -> Iterator[dict[str, Any] | Rejected]:
    loads = json_loads
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            message = loads(line)
        except json.JSONDecodeError as error:
            yield Rejected(number, "invalid JSON", str(error), line[:2000].decode("utf-8", "replace"))
            continue
        if not isinstance(message, dict):
            yield Rejected(
                number, "message must be a JSON object", type(message).__name__, line[:2000].decode("utf-8", "replace")
            )
            continue
        yield message


def people_csv_messages(stream: IO[str]) -> Iterator[dict[str, Any] | Rejected]:
    reader = csv.reader(stream)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except (csv.Error, UnicodeDecodeError) as error:
        raise ImportFileError(f"unreadable CSV header: {error}") from error
    if CSV_ID_COLUMN not in header:
        raise ImportFileError(f"a CSV of people needs a {CSV_ID_COLUMN!r} column; found {', '.join(header) or 'none'}")
    id_index = header.index(CSV_ID_COLUMN)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as error:
            yield Rejected(reader.line_num, "unreadable CSV row", str(error), "")
            continue
        if not any(cell.strip() for cell in row):
            continue
        raw = ",".join(row)[:2000]
        if len(row) != len(header):
            yield Rejected(
                reader.line_num, "wrong number of CSV columns", f"expected {len(header)}, found {len(row)}", raw
            )
            continue
        user_id = row[id_index].strip()
        if not user_id:
            yield Rejected(reader.line_num, "userId or anonymousId is required", f"{CSV_ID_COLUMN} is empty", raw)
            continue
        traits = {
            name: cell.strip()
            for index, (name, cell) in enumerate(zip(header, row, strict=True))
            if index != id_index and name and cell.strip()
        }
        # The same row imported again is a duplicate, as a retried message would be.
        digest = hashlib.sha256(orjson.dumps([user_id, traits], option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        yield {"type": "identify", "userId": user_id, "traits": traits, "messageId": f"csv-{digest}"}
