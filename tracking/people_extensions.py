"""What the apps above tracking add to its views of people: filters, fields and page sections.

Tracking lists people and shows a person, in the REST API and on the People
pages; apps above know more about them (segmentation: the segments they are
in). Tracking never names those apps: ``settings.TRACKING_PEOPLE_EXTENSIONS``
lists modules, and ``TrackingConfig.ready`` registers what each defines (a
module defines at least one of these functions):

- ``people_filters()``: filters of the people list (``PeopleFilter``), each a
  query parameter of ``GET /api/v1/people/`` and a select of the People page;
- ``person_fields()``: fields of ``GET /api/v1/people/{id}/`` (``PersonField``);
- ``person_panels()``: sections of a person's page (``PersonPanel``).

Reads only: what changes people is told through ``tracking.events``. The REST
schema is built from what is registered, so registration happens before
tracking's endpoints are imported (``ready`` runs before the URLs load), and a
read of the registry before it raises rather than answering nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest
    from rest_framework import serializers

    from accounts.models import Workspace
    from tracking.models import Person

KINDS = ("people_filters", "person_fields", "person_panels")


class FilterValueInvalid(ValueError):
    """A filter's value names nothing here (or is malformed); the message is for the user and names it."""


@dataclass(frozen=True)
class PeopleFilter:
    """``?<name>=<value>`` on the people list.

    ``apply(workspace, people, value)`` narrows the people (a queryset of this workspace's people) or
    raises ``FilterValueInvalid``; ``choices(workspace)`` are the (value, label) pairs the People page
    offers; ``schema`` is the parameter's OpenAPI schema.
    """

    name: str
    label: str
    description: str
    schema: dict[str, Any]
    apply: Callable[[Workspace, QuerySet[Person], str], QuerySet[Person]]
    choices: Callable[[Workspace], list[tuple[str, str]]]


@dataclass(frozen=True)
class PersonField:
    """A field of one person's REST answer: ``field()`` makes its (read-only) serializer field, and
    ``value(workspace, person)`` what it holds for the person."""

    name: str
    field: Callable[[], serializers.Field[Any, Any, Any, Any]]
    value: Callable[[Workspace, Person], Any]


@dataclass(frozen=True)
class PersonPanel:
    """A section of a person's page: ``render(request, person)`` answers its HTML (escaped by its template)."""

    name: str
    render: Callable[[HttpRequest, Person], str]


_registry: dict[str, list[Any]] | None = None


def extensions_load(modules: Iterable[str]) -> None:
    """Register what these modules (dotted paths) add, replacing what was registered before.

    Called from ``TrackingConfig.ready`` with ``settings.TRACKING_PEOPLE_EXTENSIONS``; a module that
    defines none of ``KINDS`` is a mistake in the settings and refused, as is a name given twice.
    """
    global _registry
    registry: dict[str, list[Any]] = {kind: [] for kind in KINDS}
    for path in modules:
        module = import_module(path)
        found = [kind for kind in KINDS if callable(getattr(module, kind, None))]
        if not found:
            raise ValueError(f"TRACKING_PEOPLE_EXTENSIONS: {path} defines none of {', '.join(KINDS)}")
        for kind in found:
            registry[kind].extend(getattr(module, kind)())
    for kind, items in registry.items():
        names = [item.name for item in items]
        if len(names) != len(set(names)):
            raise ValueError(f"TRACKING_PEOPLE_EXTENSIONS: a name of {kind} is given twice: {names}")
    _registry = registry


def _registered(kind: str) -> list[Any]:
    if _registry is None:
        raise RuntimeError("tracking's people extensions are read before TrackingConfig.ready registered them")
    return list(_registry[kind])


def people_filters() -> list[PeopleFilter]:
    return _registered("people_filters")


def person_fields() -> list[PersonField]:
    return _registered("person_fields")


def person_panels() -> list[PersonPanel]:
    return _registered("person_panels")
