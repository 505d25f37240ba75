"""The one door for raw SQL: ``accounts.sql`` binds the workspace and refuses statements without its guard."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection

from accounts.sql import (
    UnguardedStatement,
    dangerously_execute_across_workspaces,
    execute_scoped,
    execute_session,
    guard_problem,
)
from tests import factories
from tests.tracking import builders
from tracking.models import Person

ROOT = Path(__file__).resolve().parents[2]
# The segment compiler writes its own guarded statements (tests/segmentation/test_compiler.py);
# accounts/sql.py is the door itself.
EXEMPT = {"accounts/sql.py", "segmentation/compiler.py"}


def _people(workspace) -> list[tuple[int, str]]:
    return sorted(Person.objects.unscoped().filter(workspace=workspace).values_list("pk", "user_id"))


@pytest.fixture
def two(db):
    mine, theirs = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    for workspace, user_id in ((mine, "ann"), (theirs, "bob")):
        builders.person(workspace, user_id=user_id)
    return mine, theirs


def test_a_guarded_statement_reads_and_writes_its_workspace_only(two):
    mine, theirs = two
    before = _people(theirs)

    with connection.cursor() as cursor:
        execute_scoped(
            cursor,
            "UPDATE tracking_person SET user_id = user_id || %(suffix)s WHERE workspace_id = %(workspace_id)s",
            {"suffix": "-1"},
            workspace_id=mine.pk,
        )
        execute_scoped(
            cursor,
            "SELECT user_id FROM tracking_person WHERE workspace_id = %(workspace_id)s",
            {},
            workspace_id=mine.pk,
        )
        rows = cursor.fetchall()

    assert rows == [("ann-1",)]
    assert _people(theirs) == before


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        pytest.param(
            "UPDATE tracking_person SET user_id = 'x' WHERE user_id = %(user)s",
            "tracking_person is read without workspace_id = %(workspace_id)s in a WHERE, ON or AND",
            id="no-guard",
        ),
        pytest.param(
            "UPDATE tracking_person SET user_id = 'x' WHERE user_id = %(user)s OR workspace_id = %(workspace_id)s",
            "tracking_person is read without workspace_id = %(workspace_id)s in a WHERE, ON or AND",
            id="or-beside-the-guard",
        ),
        pytest.param(
            "UPDATE tracking_person SET user_id = 'x' WHERE id IN (SELECT id FROM tracking_person "
            "WHERE workspace_id = %(workspace_id)s) AND user_id = %(user)s",
            "tracking_person is read without workspace_id = %(workspace_id)s in a WHERE, ON or AND",
            id="guard-in-a-subquery-only",
        ),
        pytest.param(
            "UPDATE tracking_person p SET user_id = 'x' FROM tracking_identity i "
            "WHERE p.workspace_id = %(workspace_id)s AND i.person_id = p.id AND i.value = %(user)s",
            "i is read without i.workspace_id = %(workspace_id)s in a WHERE, ON or AND (each time it is named)",
            id="a-joined-table-unguarded",
        ),
        pytest.param(
            "INSERT INTO tracking_person (workspace_id, user_id, traits, first_seen, last_seen) "
            "SELECT workspace_id, %(user)s || '-copy', traits, first_seen, last_seen FROM tracking_person "
            "WHERE workspace_id = %(workspace_id)s AND user_id = %(user)s",
            "an insert into tracking_person must take workspace_id from %(workspace_id)s",
            id="insert-of-another-workspace-id",
        ),
    ],
)
def test_a_statement_without_the_guard_is_refused_and_nothing_changes(two, sql, problem):
    mine, theirs = two
    before = (_people(mine), _people(theirs))

    with pytest.raises(UnguardedStatement) as refused, connection.cursor() as cursor:
        execute_scoped(cursor, sql, {"user": "bob"}, workspace_id=mine.pk)

    assert str(refused.value) == problem
    assert (_people(mine), _people(theirs)) == before


def test_the_workspace_is_bound_by_the_helper_not_by_the_caller(two):
    mine, theirs = two

    with pytest.raises(UnguardedStatement) as refused, connection.cursor() as cursor:
        execute_scoped(
            cursor,
            "DELETE FROM tracking_person WHERE workspace_id = %(workspace_id)s",
            {"workspace_id": theirs.pk},
            workspace_id=mine.pk,
        )

    assert str(refused.value) == "workspace_id is bound by execute_scoped, not passed in params"
    assert [user for _, user in _people(theirs)] == ["bob"]


def test_session_statements_touch_no_tenant_table_and_crossing_workspaces_says_why(two):
    with connection.cursor() as cursor:
        with pytest.raises(UnguardedStatement) as session:
            execute_session(cursor, "DELETE FROM tracking_person")
        with pytest.raises(UnguardedStatement) as across:
            dangerously_execute_across_workspaces(cursor, "SELECT count(*) FROM tracking_person", why=" ")
        execute_session(cursor, "SELECT set_config('statement_timeout', '5s', false)")

    assert str(session.value) == "names a tenant table: use execute_scoped"
    assert str(across.value) == "a statement across workspaces must say why"
    assert Person.objects.unscoped().count() == 2


def test_every_raw_statement_of_the_product_holds_its_guard(db):
    """The statements the product sends through the door, checked as text, whatever test reaches them."""
    from segmentation import membership, selectors, ui_selectors
    from segmentation.catalogue import services as catalogue
    from segmentation.services import static

    statements = [
        membership._APPLY_SQL.format(only=only, check=check, ids=ids)
        for only in ("", membership._ONLY_SQL)
        for check in ("", membership._CHECK_SQL)
        for ids in ("", membership._IDS_SQL)
    ]
    statements += [
        selectors._MEMBER_ROWS_SQL,
        ui_selectors._OVERLAP,
        static._KEEP_SQL,
        *(sql.format(ids="NULL") for sql in (static._STATIC_APPLY_SQL, static._STATIC_REMOVE_SQL)),
        static._REPLACE_REMOVE_SQL.format(ids="NULL"),
        catalogue._EVENT_UPPER,
        catalogue._EVENT_NAMES,
        catalogue._EVENT_PROPERTIES_SQL,
        catalogue._TRAITS_SQL,
    ]
    assert [guard_problem(sql) for sql in statements] == [None] * len(statements)


def _app_files() -> list[Path]:
    found = []
    for config in apps.get_app_configs():
        path = Path(config.path)
        if ROOT in path.parents:
            found.extend(p for p in path.rglob("*.py") if "migrations" not in p.parts)
    return sorted(set(found))


def _raw_calls(path: Path) -> int:
    """Calls of ``<cursor>.execute/executemany`` and of ``RawSQL``/``.raw``/``.extra`` in one file."""
    tree = ast.parse(path.read_text())
    count = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        executes = isinstance(func, ast.Attribute) and func.attr in {"execute", "executemany"}
        if (
            (executes and "cursor" in ast.unparse(func.value).lower())  # type: ignore[attr-defined]
            or (isinstance(func, ast.Attribute) and func.attr in {"raw", "extra"})
            or (isinstance(func, ast.Name) and func.id == "RawSQL")
        ):
            count += 1
    return count


def test_raw_sql_goes_through_accounts_sql():
    """A new ``cursor.execute`` anywhere in the apps fails here: use ``accounts.sql``."""
    found = {str(path.relative_to(ROOT)): _raw_calls(path) for path in _app_files()}
    direct = {name: n for name, n in found.items() if n and name not in EXEMPT}

    assert direct == {}


def test_other_apps_tables_are_named_through_their_models():
    """Outside the compiler, SQL text names only its own app's tables; others come from ``with_tables``."""
    owner = {model._meta.db_table: model._meta.app_config.path for model in apps.get_models(include_auto_created=True)}
    pattern = re.compile(r"\b(" + "|".join(sorted(owner, key=len, reverse=True)) + r")\b")
    strays = []
    for path in _app_files():
        if str(path.relative_to(ROOT)) in EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for table in pattern.findall(node.value):
                    if not str(path).startswith(owner[table] + "/"):
                        strays.append((str(path.relative_to(ROOT)), table))
    assert strays == []


def test_a_prepared_statement_is_checked_and_bound_like_any_other(two):
    """Ingestion's hot paths ask psycopg for prepared statements through the same door."""
    mine, _theirs = two
    with connection.cursor() as wrapper:
        raw = wrapper.cursor  # psycopg's own cursor: the one that takes prepare=True
        with pytest.raises(UnguardedStatement):
            execute_scoped(raw, "SELECT user_id FROM tracking_person", {}, workspace_id=mine.pk, prepare=True)
        for _ in range(2):
            execute_scoped(
                raw,
                "SELECT user_id FROM tracking_person WHERE workspace_id = %(workspace_id)s",
                {},
                workspace_id=mine.pk,
                prepare=True,
            )
            assert raw.fetchall() == [("ann",)]
        with pytest.raises(UnguardedStatement):
            execute_session(raw, "SELECT count(*) FROM tracking_person", prepare=True)
