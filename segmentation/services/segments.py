"""Segments themselves: validating a definition, creating, changing and deleting a segment, previewing
a definition without saving it. A saved definition is refreshed through ``segmentation.services.refresh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_record
from core.names import InvalidName, name_clean, name_constraint_violated, name_taken_message
from segmentation.compiler import compile_preview
from segmentation.definition import Node, parse, referenced_segments
from segmentation.membership import evaluation_settings, is_timeout, plan_settings
from segmentation.models import MAX_TAG_LENGTH, MAX_TAGS, Segment, SegmentStatus
from segmentation.services.refresh import segment_refresh_enqueue
from segmentation.tags import tag_key
from tracking.models import Person
from tracking.people_selectors import people_list

MIN_REFRESH_INTERVAL_SECONDS = 60
MAX_REFRESH_INTERVAL_SECONDS = 7 * 86400
MAX_SAMPLE_SIZE = 100
NAME_CONSTRAINT = "segment_name_ci_unique"


@dataclass(frozen=True)
class SegmentPreview:
    count: int
    sample: list[Person]


class SegmentQueryTimeout(Exception):
    """Evaluating a definition took longer than its statement timeout."""


# --- validation ----------------------------------------------------------------------


def _reference_graph(workspace: Workspace) -> dict[int, set[int]]:
    """Every segment of the workspace -> the segments its definition refers to (one query)."""
    rows = Segment.objects.filter(workspace=workspace).values_list("pk", "definition")
    return {pk: referenced_segments(document) for pk, document in rows}


def definition_validate(*, workspace: Workspace, definition: Any, self_id: int | None = None) -> Node:
    """The parsed tree, or ``DefinitionInvalid``: references must name segments of this workspace, without cycles."""
    graph = _reference_graph(workspace)
    return parse(
        definition,
        segment_exists=lambda pk: pk in graph,
        segment_references=lambda pk: graph.get(pk, set()),
        self_id=self_id,
    )


def _clean_name(workspace: Workspace, name: str, *, exclude: int | None = None) -> str:
    """The stored form of the name (``core.names``), refused when another segment of the workspace
    has the same name, by its case-folded normal form."""
    others = Segment.objects.filter(workspace=workspace)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    return name_clean(name, noun="A segment", max_length=200, existing=others.values_list("name", flat=True))


def _clean_description(description: str) -> str:
    if len(description) > 2000:
        raise ValidationError({"description": ["At most 2000 characters."]})
    return description


def _clean_tags(tags: list[str]) -> list[str]:
    """Tags in their stored form, each once, in the order given; ``ValidationError`` naming the first bad one."""
    cleaned: list[str] = []
    for index, raw in enumerate(tags):
        try:
            tag = tag_key(raw)
        except InvalidName as error:
            raise ValidationError({"tags": [f"Tag {index + 1}: {error}"]}) from error
        if not tag:
            raise ValidationError({"tags": [f"Tag {index + 1} is empty."]})
        if "," in tag:
            # The page edits tags as one comma-separated line: a comma inside one could not come back.
            raise ValidationError({"tags": [f"Tag {index + 1} contains a comma; give each tag on its own."]})
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError({"tags": [f"Tag {index + 1} is longer than {MAX_TAG_LENGTH} characters."]})
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({"tags": [f"At most {MAX_TAGS} tags, not {len(cleaned)}."]})
    return cleaned


def _clean_interval(seconds: int) -> int:
    if not MIN_REFRESH_INTERVAL_SECONDS <= seconds <= MAX_REFRESH_INTERVAL_SECONDS:
        raise ValidationError(
            {
                "refresh_interval_seconds": [
                    f"Must be between {MIN_REFRESH_INTERVAL_SECONDS} and {MAX_REFRESH_INTERVAL_SECONDS} seconds."
                ]
            }
        )
    return seconds


def _name_taken(name: str) -> ValidationError:
    return ValidationError({"name": [name_taken_message("A segment", name)]})


# --- create, update, delete --------------------------------------------------------------


def segment_create(
    *,
    workspace: Workspace,
    actor: User | None,
    name: str,
    definition: dict[str, Any] | None,
    static: bool = False,
    description: str = "",
    tags: list[str] | None = None,
) -> Segment:
    """A new segment. A dynamic one is refreshed once the transaction commits; a static one starts empty.

    Raises ``DefinitionInvalid`` for a bad definition, ``ValidationError`` ({field: [message]}) otherwise.
    Nothing is written when either is raised.
    """
    name = _clean_name(workspace, name)
    description = _clean_description(description)
    tags = _clean_tags(tags or [])
    if static and definition is not None:
        raise ValidationError({"definition": ["A static segment has no definition: its members are uploaded."]})
    if not static:
        if definition is None:
            raise ValidationError({"definition": ["A segment needs a definition (or static: true)."]})
        definition_validate(workspace=workspace, definition=definition)
    now = timezone.now()
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                tags=tags,
                definition=None if static else definition,
                is_static=static,
                created_by=actor,
                # A static segment is exactly what it was told: fresh from the start, never recomputed.
                status=SegmentStatus.FRESH if static else SegmentStatus.PENDING,
                refreshed_at=now if static else None,
            )
            audit_record(workspace=workspace, actor=actor, action="segment.created", target=name)
            if not static:
                segment_refresh_enqueue(segment=segment)
    except IntegrityError as error:
        if not name_constraint_violated(error, NAME_CONSTRAINT):
            raise
        raise _name_taken(name) from error
    return segment


def segment_update(
    *,
    segment: Segment,
    actor: User | None,
    name: str | None = None,
    definition: dict[str, Any] | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    refresh_interval_seconds: int | None = None,
) -> Segment:
    """Change what is given. A new definition is validated (cycles included) and refreshed on commit."""
    workspace = Workspace(pk=segment.workspace_id)
    fields: list[str] = []
    if name is not None:
        segment.name = _clean_name(workspace, name, exclude=segment.pk)
        fields.append("name")
    if description is not None:
        segment.description = _clean_description(description)
        fields.append("description")
    if tags is not None:
        segment.tags = _clean_tags(tags)
        fields.append("tags")
    if refresh_interval_seconds is not None:
        segment.refresh_interval_seconds = _clean_interval(refresh_interval_seconds)
        fields.append("refresh_interval_seconds")
    definition_changed = False
    if definition is not None:
        if segment.is_static:
            raise ValidationError({"definition": ["A static segment has no definition: its members are uploaded."]})
        definition_validate(workspace=workspace, definition=definition, self_id=segment.pk)
        definition_changed = definition != segment.definition
        segment.definition = definition
        fields.append("definition")
    if not fields:
        return segment
    try:
        with transaction.atomic():
            segment.save(update_fields=[*fields, "updated_at"])
            audit_record(
                workspace=workspace,
                actor=actor,
                action="segment.updated",
                target=segment.name,
                details={"fields": fields},
            )
            if definition_changed:
                segment_refresh_enqueue(segment=segment)
    except IntegrityError as error:
        if not name_constraint_violated(error, NAME_CONSTRAINT):
            raise
        raise _name_taken(segment.name) from error
    return segment


def segment_delete(*, segment: Segment, actor: User | None) -> None:
    """Delete the segment and its membership history; refused (``ValidationError`` naming them) while
    another segment's definition names it, or while another app's rows protect it (a campaign's audience)."""
    workspace = Workspace(pk=segment.workspace_id)
    with transaction.atomic():
        # Serialises concurrent deletes and refreshes' reads of the row; references are checked below.
        Segment.objects.select_for_update().filter(workspace=workspace, pk=segment.pk).values_list("pk").first()
        graph = _reference_graph(workspace)
        users = sorted(pk for pk, refs in graph.items() if segment.pk in refs)
        if users:
            names = dict(Segment.objects.filter(workspace=workspace, pk__in=users).values_list("pk", "name"))
            listed = ", ".join(f"{names[pk]!r} (id {pk})" for pk in users)
            raise ValidationError({"segment": [f"Segment {segment.name!r} is used by the definition of {listed}."]})
        audit_record(workspace=workspace, actor=actor, action="segment.deleted", target=segment.name)
        try:
            segment.delete()
        except (ProtectedError, RestrictedError) as error:
            # Apps above keep references to segments (a campaign's audience, its trigger) that this
            # app does not name: the ORM's refusal says who uses it.
            raise ValidationError({"segment": [f"Segment {segment.name!r} is used by {_users(error)}."]}) from error


def _users(error: ProtectedError | RestrictedError) -> str:
    """The objects a refused delete names, as "campaign audience 'Win back' (id 3)", in id order."""
    objects = error.protected_objects if isinstance(error, ProtectedError) else error.restricted_objects
    described = sorted(
        {(str(obj._meta.verbose_name), str(obj), obj.pk) for obj in objects},
        key=lambda item: (item[0], item[2]),
    )
    return ", ".join(f"{noun} {text!r} (id {pk})" for noun, text, pk in described)


# --- preview -------------------------------------------------------------------------------


def segment_preview(*, workspace: Workspace, definition: dict[str, Any], sample_size: int = 10) -> SegmentPreview:
    """How many people the definition holds now, and a sample (most recently seen first), without saving.

    Raises ``DefinitionInvalid``, or ``SegmentQueryTimeout`` beyond ``SEGMENT_PREVIEW_TIMEOUT_SECONDS``.
    """
    tree = definition_validate(workspace=workspace, definition=definition)
    sample_size = max(0, min(sample_size, MAX_SAMPLE_SIZE))
    now = timezone.now()
    # One evaluation gives the count and the sample's ids: half the work of two.
    query = compile_preview(tree, workspace_id=workspace.pk, now=now, sample_size=sample_size)
    try:
        with transaction.atomic():
            evaluation_settings(settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS)
            plan_settings(query)
            with connection.cursor() as cursor:
                query.execute(cursor)
                count, ids = cursor.fetchone()
            sample: list[Person] = []
            if ids:
                sample = list(people_list(workspace).filter(pk__in=ids))
    except Exception as error:
        if is_timeout(error):
            raise SegmentQueryTimeout(
                f"Counting this segment took longer than {settings.SEGMENT_PREVIEW_TIMEOUT_SECONDS:g} s."
            ) from error
        raise
    return SegmentPreview(count=count, sample=sample)
