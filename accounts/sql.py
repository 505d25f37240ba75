"""The one door for raw SQL outside the segment compiler: it binds and checks the workspace guard.

``execute_scoped(cursor, sql, params, workspace_id=...)`` binds ``workspace_id``
itself (a caller cannot pass its own) and refuses, before anything runs, a
statement in which some tenant table (a model's table with a ``workspace_id``
column, read from the app registry) is not held to it:

- every read, update or delete of a tenant table (``FROM``, ``JOIN``,
  ``UPDATE``, ``USING``, ``DELETE FROM``) has the predicate
  ``<alias>.workspace_id = %(workspace_id)s`` (bare ``workspace_id = ...`` when
  the statement names that one table only), joined by ``WHERE``, ``ON`` or
  ``AND``, with no ``OR`` beside it at its level of parentheses;
- every insert into a tenant table lists ``workspace_id`` among its columns and
  takes ``%(workspace_id)s`` for it.

It checks text, not a parsed plan: a predicate present but cancelled by the
rest of the statement (``AND false OR ...`` inside a parenthesis) is the
reviewer's to catch. What it does guarantee is that no tenant table is named
without its guard, which is the mistake that leaks. Checks are cached by
statement text, so repeated statements cost a dictionary lookup.

Two other doors, named for what they allow:

- ``execute_session`` for statements that touch no tenant table (settings,
  advisory locks, temporary tables); it refuses one that does.
- ``dangerously_execute_across_workspaces`` for the few statements that read
  every workspace on purpose (claiming due refreshes, resolving a write key);
  the caller says why.

``tests/accounts/test_sql.py`` also scans the code: a ``cursor.execute``
anywhere else fails the build.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, Protocol

import psycopg
from django.apps import apps
from django.db import connection
from django.db.models import Model

GUARD = "%(workspace_id)s"


class Cursor(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def _run(cursor: Any, sql: str, params: Any, prepare: bool) -> None:
    """Run a checked statement; ``prepare=True`` (psycopg's server-side prepared statement, for the
    hot paths of ingestion, which hold a raw psycopg cursor) only where asked for."""
    if prepare:
        cursor.execute(sql, params, prepare=True)
    else:
        cursor.execute(sql, params)


class UnguardedStatement(ValueError):
    """A statement names a tenant table without holding it to the bound workspace."""


@cache
def tenant_tables() -> frozenset[str]:
    """The tables of every installed model that has a ``workspace_id`` column."""
    return frozenset(
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if any(field.column == "workspace_id" for field in model._meta.concrete_fields)
    )


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_KEYWORDS = frozenset(
    {
        "where",
        "on",
        "join",
        "left",
        "right",
        "inner",
        "full",
        "cross",
        "natural",
        "lateral",
        "using",
        "set",
        "group",
        "order",
        "limit",
        "returning",
        "select",
        "union",
        "for",
        "window",
        "having",
        "offset",
        "values",
        "default",
    }
)
_TABLE_REF = re.compile(
    rf"\b(FROM|JOIN|UPDATE|USING|INTO)\s+(?:ONLY\s+)?({_IDENT})(?:\s+(?:AS\s+)?({_IDENT}))?", re.IGNORECASE
)
_GUARD_RE = re.compile(rf"(?:\b({_IDENT})\.)?\bworkspace_id\s*=\s*{re.escape(GUARD)}", re.IGNORECASE)


def _depths(sql: str) -> list[int]:
    """The parenthesis depth at each character (quoted text is assumed free of parentheses)."""
    depths, depth = [], 0
    for char in sql:
        if char == "(":
            depth += 1
        depths.append(depth)
        if char == ")":
            depth -= 1
    return depths


def _enclosing(sql: str, depths: list[int], at: int) -> tuple[int, int]:
    """The span of the parenthesis (or the whole statement) that holds position ``at``."""
    depth = depths[at]
    start = at
    while start > 0 and depths[start - 1] >= depth:
        start -= 1
    end = at
    while end < len(sql) - 1 and depths[end + 1] >= depth:
        end += 1
    return start, end


def _guard_holds(sql: str, depths: list[int], match: re.Match[str]) -> bool:
    """The predicate is a conjunct: joined by WHERE, ON or AND, with no OR at its own level."""
    before = sql[: match.start()].rstrip()
    if not re.search(r"\b(WHERE|ON|AND)$", before, re.IGNORECASE):
        return False
    depth = depths[match.start()]
    start, end = _enclosing(sql, depths, match.start())
    for word in re.finditer(r"\bOR\b", sql[start : end + 1], re.IGNORECASE):
        if depths[start + word.start()] == depth:
            return False
    return True


def _top_level_items(text: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _insert_problem(sql: str, table: str, after: int) -> str | None:
    """Why an ``INSERT INTO table (...)`` does not write the bound workspace, if it does not."""
    columns = re.match(r"\s*\(([^)]*)\)\s*(SELECT\s+(?:DISTINCT\s+)?|VALUES\s*\()", sql[after:], re.IGNORECASE)
    if columns is None:
        return f"an insert into {table} must list its columns, workspace_id among them"
    names = [name.strip().lower() for name in columns.group(1).split(",")]
    if "workspace_id" not in names:
        return f"an insert into {table} must set workspace_id"
    rest = sql[after + columns.end() :]
    end = re.search(r"\bFROM\b|\bRETURNING\b|\bON\s+CONFLICT\b|\)\s*$|\bUNION\b", rest, re.IGNORECASE)
    values = _top_level_items(rest[: end.start()] if end else rest)
    index = names.index("workspace_id")
    if index >= len(values) or values[index] != GUARD:
        return f"an insert into {table} must take workspace_id from {GUARD}"
    return None


@lru_cache(maxsize=512)
def guard_problem(sql: str) -> str | None:
    """Why ``sql`` is not held to the bound workspace, or None when every tenant table is."""
    tenant = tenant_tables()
    depths = _depths(sql)
    guards = [m for m in _GUARD_RE.finditer(sql) if _guard_holds(sql, depths, m)]
    guarded = Counter((m.group(1) or "").lower() for m in guards if m.group(1))
    bare = [m.start() for m in guards if not m.group(1)]
    references = [m for m in _TABLE_REF.finditer(sql) if m.group(2).lower() in tenant]
    if not references:
        return "names no tenant table: use execute_session"
    reads: Counter[str] = Counter()
    spans: list[tuple[int, int, int]] = []  # (start, end, depth) of each unaliased read
    for ref in references:
        table = ref.group(2).lower()
        if ref.group(1).upper() == "INTO":
            if (problem := _insert_problem(sql, table, ref.end(2))) is not None:
                return problem
            continue
        alias = ref.group(3).lower() if ref.group(3) and ref.group(3).lower() not in _KEYWORDS else None
        if alias is not None:
            reads[alias] += 1
            continue
        # A bare ``workspace_id = ...`` belongs to the one table its SELECT names without an alias.
        start, end = _enclosing(sql, depths, ref.start())
        depth = depths[ref.start()]
        if any(other[:3] == (start, end, depth) for other in spans):
            return f"{table} is named without an alias beside another table: qualify its workspace_id"
        spans.append((start, end, depth))
        if not any(start <= at <= end and depths[at] == depth for at in bare):
            return f"{table} is read without workspace_id = {GUARD} in a WHERE, ON or AND"
    for name, count in reads.items():
        if guarded[name] < count:
            return f"{name} is read without {name}.workspace_id = {GUARD} in a WHERE, ON or AND (each time it is named)"
    return None


def with_tables(sql: str, **models: type[Model]) -> str:
    """``sql`` with each ``{name}`` replaced by that model's table: statements name other apps' tables
    through their models, never as text. Other braces (``'{}'``) are left alone."""
    for name, model in models.items():
        sql = sql.replace(f"{{{name}}}", model._meta.db_table)
    return sql


def execute_scoped(
    cursor: Cursor, sql: str, params: Mapping[str, Any] | None = None, *, workspace_id: int, prepare: bool = False
) -> None:
    """Run ``sql`` with ``params`` and ``workspace_id`` bound as ``%(workspace_id)s``; raises
    ``UnguardedStatement`` (nothing runs) when a tenant table is not held to it. ``prepare``
    asks psycopg for a prepared statement (a raw psycopg cursor only)."""
    if params is not None and "workspace_id" in params:
        raise UnguardedStatement("workspace_id is bound by execute_scoped, not passed in params")
    if (problem := guard_problem(sql)) is not None:
        raise UnguardedStatement(problem)
    _run(cursor, sql, {**(params or {}), "workspace_id": int(workspace_id)}, prepare)


def execute_session(cursor: Cursor, sql: str, params: Any = None, *, prepare: bool = False) -> None:
    """Run a statement that touches no tenant table: settings, advisory locks, temporary tables."""
    if _names_tenant_table(sql):
        raise UnguardedStatement("names a tenant table: use execute_scoped")
    _run(cursor, sql, params, prepare)


@lru_cache(maxsize=512)
def _names_tenant_table(sql: str) -> bool:
    return any(m.group(2).lower() in tenant_tables() for m in _TABLE_REF.finditer(sql))


def dangerously_execute_across_workspaces(
    cursor: Cursor, sql: str, params: Any = None, *, why: str, prepare: bool = False
) -> None:
    """Run a statement that reads every workspace on purpose; ``why`` says why, for the reader."""
    if not why.strip():
        raise UnguardedStatement("a statement across workspaces must say why")
    _run(cursor, sql, params, prepare)


# psycopg prepares a statement executed with ``prepare=True`` at once, and any other
# only after this many executions: never, in effect.
_ONLY_WHEN_ASKED = 2**31


def prepare_when_asked(raw: psycopg.Connection[Any]) -> None:
    """Let the statements marked ``prepare=True`` be prepared on this connection.

    Django opens its psycopg connections with ``prepare_threshold=None`` (for
    transaction-pooling proxies), which makes psycopg ignore ``prepare=True``. The
    ORM's statements on the connection stay unprepared.
    """
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _ONLY_WHEN_ASKED


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A plain psycopg cursor on Django's connection (and its transaction) for the hot paths:
    server-side parameter binding (arrays travel as parameters instead of being interpolated
    into the text) and, with ``prepare=True``, statements parsed and planned once per
    connection. Errors surface as ``django.db`` errors."""
    connection.ensure_connection()
    raw: Any = connection.connection
    prepare_when_asked(raw)
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        yield cursor
