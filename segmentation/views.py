"""HTML views of segments: the list, the builder (new and edit), a segment's page, overlap, and the
builder's JSON helpers (live preview, catalogue autocomplete).

Writes go through ``segmentation.services``; members and viewers may read
everything, only members and above may save, refresh, duplicate or delete
(``workspace_required(write="member")`` answers a viewer's POST with 403).
The live preview changes nothing but, like the REST API's preview, is a
write-role call (it runs the segment's query on demand); a viewer's builder is
read-only and shows the stored size instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models.functions import Lower
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import reswap, retarget

from accounts.decorators import workspace_required
from accounts.models import Workspace
from accounts.requests import MemberRequest
from core.names import InvalidName, name_key
from segmentation import charts, person_views, selectors, services, ui_selectors
from segmentation.catalogue import selectors as catalogue
from segmentation.catalogue.models import PropertySource
from segmentation.definition import DefinitionInvalid, Node, parse, referenced_segments
from segmentation.exports import csv_lines
from segmentation.models import Segment, SegmentStatus
from segmentation.playbooks import BY_SLUG, PLAYBOOKS
from segmentation.sentence import Part, sentence
from segmentation.tags import tag_key
from tracking import people_selectors
from tracking.labels import person_label
from tracking.models import Person

MEMBERS_PAGE_SIZE = 25
PREVIEW_SAMPLE = 6
MAX_PREVIEW_BYTES = 1_000_000
CSV_CHUNK = 2000
SORT_LABELS = [
    ("name", "Name (A\u2013Z)"),
    ("-name", "Name (Z\u2013A)"),
    ("-size", "Largest first"),
    ("size", "Smallest first"),
    ("-refreshed_at", "Recently refreshed"),
    ("refreshed_at", "Least recently refreshed"),
]


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200, label="Name")
    description = forms.CharField(
        max_length=2000, required=False, label="Description", widget=forms.TextInput(attrs={"placeholder": "Optional"})
    )
    tags = forms.CharField(
        max_length=2000,
        required=False,
        label="Tags",
        help_text="Separated by commas, e.g. vip, email",
        widget=forms.TextInput(attrs={"placeholder": "Optional", "autocomplete": "off"}),
    )
    definition = forms.CharField(widget=forms.Textarea(attrs={"hidden": True}), label="Definition (JSON)")

    def clean_tags(self) -> list[str]:
        """The line as a list; the service normalises and checks each tag."""
        return [tag for tag in (part.strip() for part in self.cleaned_data["tags"].split(",")) if tag]

    def clean_definition(self) -> Any:
        text = self.cleaned_data["definition"]
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValidationError(f"Not valid JSON: {error}") from error
        if not isinstance(document, dict):
            raise ValidationError("The definition must be one JSON object with a type.")
        return document


def _segment_or_404(workspace: Workspace, pk: int) -> Segment:
    return get_object_or_404(Segment.objects.filter(workspace=workspace), pk=pk)


def _person_detail(person: Person) -> str:
    traits = person.traits if isinstance(person.traits, dict) else {}
    email = traits.get("email")
    detail = email if isinstance(email, str) else ""
    if person.user_id and person_label(person) != person.user_id:
        detail = f"{person.user_id} · {detail}" if detail else person.user_id
    return detail


def _segment_names(workspace: Workspace, tree: Node | None) -> dict[int, str]:
    ids = referenced_segments(tree) if tree is not None else set()
    if not ids:
        return {}
    return dict(Segment.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", "name"))


def _stored_sentence(workspace: Workspace, segment: Segment) -> list[Part]:
    """The sentence of a stored definition (valid when saved; a later-deleted reference reads as its id)."""
    if segment.definition is None:
        return []
    try:
        tree = parse(segment.definition)
    except DefinitionInvalid:
        return [Part("The stored definition no longer reads as valid; open it in the builder to fix it.")]
    return sentence(tree, _segment_names(workspace, tree))


# --- The list -----------------------------------------------------------------------------


@workspace_required()
@require_safe
def segment_list(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    q = request.GET.get("q", "").strip()[:200]
    sort = request.GET.get("sort", "name")
    if sort not in dict(SORT_LABELS):
        sort = "name"
    tags = selectors.segment_tags(workspace)
    try:
        tag = tag_key(request.GET.get("tag", "")[:200])
    except InvalidName:
        tag = ""
    if tag and tag not in dict(tags):
        tags.append((tag, 0))  # a link to a tag no segment carries any more: kept, and shown with 0
    segments = list(selectors.segment_list(workspace, search=q, order=sort, tag=tag or None))
    trends = ui_selectors.segment_trends(workspace, segments)
    rows = [(segment, trends[segment.pk], charts.sparkline(trends[segment.pk].points)) for segment in segments]
    context = {
        "section": "segments",
        "rows": rows,
        "q": q,
        "sort": sort,
        "sorts": SORT_LABELS,
        "tags": tags,
        "tag": tag,
        "playbooks": PLAYBOOKS,
        "has_any": bool(rows) or (bool(q or tag) and Segment.objects.filter(workspace=workspace).exists()),
        "busy": any(s.status in (SegmentStatus.PENDING, SegmentStatus.REFRESHING) for s in segments),
        "can_write": request.membership.can_write,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "segmentation/segment_list.html#segment-table", context)
    return render(request, "segmentation/segment_list.html", context)


# --- The builder ---------------------------------------------------------------------------


def _segments_for_picker(workspace: Workspace) -> list[dict[str, Any]]:
    segments = Segment.objects.filter(workspace=workspace).order_by(Lower("name"), "id")
    return [{"id": pk, "name": name} for pk, name in segments.values_list("pk", "name")]


def _builder_page(
    request: MemberRequest,
    *,
    form: SegmentForm,
    document: Any,
    segment: Segment | None,
    errors: list[dict[str, str]],
    playbook: str = "",
    status: int = 200,
) -> HttpResponse:
    workspace = request.workspace
    can_write = request.membership.can_write
    if not can_write:
        for field in form.fields.values():
            field.disabled = True
    parts: list[Part] = []
    if isinstance(document, dict):
        try:
            tree = parse(document)
        except DefinitionInvalid:
            tree = None
        if tree is not None:
            parts = sentence(tree, _segment_names(workspace, tree))
    return render(
        request,
        "segmentation/segment_builder.html",
        {
            "section": "segments",
            "form": form,
            "segment": segment,
            "document": document,
            "errors": errors,
            "sentence": parts,
            "segments_json": _segments_for_picker(workspace),
            "playbooks": PLAYBOOKS,
            "playbook": playbook,
            "can_write": can_write,
        },
        status=status,
    )


def _definition_errors(error: DefinitionInvalid) -> list[dict[str, str]]:
    return [{"path": e.path, "message": e.message} for e in error.errors]


def _save(request: MemberRequest, form: SegmentForm, segment: Segment | None) -> HttpResponse:
    """Validate and save through the services; on any refusal show the builder again with the
    messages in place, and nothing written."""
    document: Any
    try:
        document = json.loads(request.POST.get("definition", ""))
    except ValueError:
        document = None  # the builder starts empty; the form says why the text was refused
    if not isinstance(document, dict):
        document = None
    if not form.is_valid():
        return _builder_page(request, form=form, document=document, segment=segment, errors=[], status=400)
    data = form.cleaned_data
    try:
        if segment is None:
            saved = services.segment_create(
                workspace=request.workspace,
                actor=request.user,
                name=data["name"],
                definition=data["definition"],
                description=data["description"],
                tags=data["tags"],
            )
            messages.success(request, f"Segment “{saved.name}” saved.")
        else:
            saved = services.segment_update(
                segment=segment,
                actor=request.user,
                name=data["name"],
                definition=data["definition"],
                description=data["description"],
                tags=data["tags"],
            )
            messages.success(request, f"Segment “{saved.name}” saved.")
    except DefinitionInvalid as error:
        errors = _definition_errors(error)
        form.add_error(
            None, f"The definition has {len(errors)} problem{'s' if len(errors) != 1 else ''}, marked below."
        )
        return _builder_page(request, form=form, document=document, segment=segment, errors=errors, status=400)
    except ValidationError as error:
        for field, field_errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, field_errors)
        return _builder_page(request, form=form, document=document, segment=segment, errors=[], status=400)
    return redirect("segment_detail", pk=saved.pk)


@workspace_required(write="member")
@require_http_methods(["GET", "HEAD", "POST"])
def segment_new(request: MemberRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, SegmentForm(request.POST), None)
    slug = request.GET.get("template", "")
    playbook = BY_SLUG.get(slug)
    if slug and playbook is None:
        raise Http404("No such template")
    document = playbook.document() if playbook else {"type": "and", "conditions": []}
    form = SegmentForm(initial={"name": playbook.name if playbook else "", "definition": json.dumps(document)})
    return _builder_page(request, form=form, document=document, segment=None, errors=[], playbook=slug)


@workspace_required(write="member")
@require_http_methods(["GET", "HEAD", "POST"])
def segment_edit(request: MemberRequest, pk: int) -> HttpResponse:
    segment = _segment_or_404(request.workspace, pk)
    if segment.is_static:
        messages.info(request, "A static segment has no definition to edit: its members are uploaded.")
        return redirect("segment_detail", pk=segment.pk)
    if request.method == "POST":
        return _save(request, SegmentForm(request.POST), segment)
    form = SegmentForm(
        initial={
            "name": segment.name,
            "description": segment.description,
            "tags": ", ".join(segment.tags),
            "definition": json.dumps(segment.definition),
        }
    )
    return _builder_page(request, form=form, document=segment.definition, segment=segment, errors=[])


def _json_error(detail: str, code: str, status: int, errors: list[dict[str, str]] | None = None) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, "errors": errors or []}, status=status)


@workspace_required(write="member")
@require_POST
def segment_builder_preview(request: MemberRequest) -> JsonResponse:
    """The builder's live answer: the sentence, the count and a few people, or every error with its path;
    and, either way, ``warnings``: names and keys the workspace never sent (likely typos), which
    never block a save."""
    workspace = request.workspace
    if len(request.body) > MAX_PREVIEW_BYTES:
        return _json_error("The definition is too large to preview.", "too_large", 400)
    try:
        body = json.loads(request.body)
    except ValueError:
        return _json_error('The body must be JSON: {"definition": {...}}.', "parse_error", 400)
    if not isinstance(body, dict) or "definition" not in body:
        return _json_error("definition: is required.", "invalid", 400, [{"path": "", "message": "is required"}])
    segment_id = body.get("segment")
    if segment_id is not None and (
        isinstance(segment_id, bool)
        or not isinstance(segment_id, int)
        or not Segment.objects.filter(workspace=workspace, pk=segment_id).exists()
    ):
        return _json_error("segment: no such segment in this workspace.", "not_found", 404)
    document = body["definition"]
    warnings = [
        {"path": w.path, "message": w.message, "suggestion": w.suggestion}
        for w in catalogue.definition_warnings(workspace, document)
    ]
    try:
        tree = services.definition_validate(workspace=workspace, definition=document, self_id=segment_id)
        result = services.segment_preview(workspace=workspace, definition=document, sample_size=PREVIEW_SAMPLE)
    except DefinitionInvalid as error:
        errors = _definition_errors(error)
        return JsonResponse(
            {
                "detail": "The definition is invalid.",
                "code": "invalid",
                "errors": errors,
                "warnings": warnings,
                "sentence": None,
            },
            status=400,
        )
    except services.SegmentQueryTimeout as error:
        body = {"detail": str(error), "code": "timeout", "errors": [{"path": "", "message": str(error)}]}
        return JsonResponse({**body, "warnings": warnings}, status=503)
    parts = sentence(tree, _segment_names(workspace, tree))
    return JsonResponse(
        {
            "count": result.count,
            "sample": [
                {
                    "id": person.pk,
                    "label": person_label(person),
                    "detail": _person_detail(person),
                    "url": reverse("person_detail", args=[person.pk]),
                }
                for person in result.sample
            ],
            "sentence": [{"text": part.text, "kind": part.kind} for part in parts],
            "errors": [],
            "warnings": warnings,
        }
    )


CATALOGUE_KINDS = ("events", "keys", "values")


@workspace_required()
@require_safe
def segment_catalogue(request: MemberRequest) -> JsonResponse:
    """Autocomplete for the builder's pickers, from the maintained catalogue (never the events table).

    ``kind=keys&numeric=1``: keys seen with numeric values first, each result with ``numeric``."""
    workspace = request.workspace
    kind = request.GET.get("kind", "events")
    source = request.GET.get("source", PropertySource.EVENT)
    q = request.GET.get("q", "")[:200]
    event = request.GET.get("event", "")[:200]
    if kind not in CATALOGUE_KINDS:
        return _json_error(
            "kind: one of events, keys, values.",
            "invalid",
            400,
            [{"path": "kind", "message": "one of events, keys, values"}],
        )
    if source not in PropertySource.values:
        return _json_error(
            "source: one of event, trait.", "invalid", 400, [{"path": "source", "message": "one of event, trait"}]
        )
    if kind == "events":
        found = catalogue.event_names(workspace, q=q)
    elif kind == "keys":
        numeric_first = request.GET.get("numeric") == "1"
        found = catalogue.property_keys(workspace, source=source, event=event, q=q, numeric_first=numeric_first)
    else:
        key = request.GET.get("key", "")[:300]
        if not key:
            return JsonResponse({"results": []})
        found = catalogue.property_values(workspace, source=source, event=event, key=key, q=q)
    results = []
    for suggestion in found:
        result: dict[str, Any] = {"value": suggestion.value, "count": suggestion.count, "type": suggestion.type}
        if suggestion.numeric is not None:
            result["numeric"] = suggestion.numeric
        results.append(result)
    return JsonResponse({"results": results})


# --- A segment's page ----------------------------------------------------------------------


def _members_page(request: MemberRequest, segment: Segment) -> tuple[Any, str]:
    q = request.GET.get("q", "").strip()[:200]
    members = people_selectors.with_first_anonymous_id(selectors.segment_members(request.workspace, segment, search=q))
    page = Paginator(members, MEMBERS_PAGE_SIZE).get_page(request.GET.get("page"))
    return page, q


def _live_state(segment: Segment) -> str:
    """What the page was drawn from: while it is the same, a poll has nothing new to show."""
    refreshed = segment.refreshed_at.timestamp() if segment.refreshed_at else ""
    return f"{segment.status}-{refreshed}-{segment.size}"


def _share(size: int, total: int) -> str:
    """``size`` as a percentage of ``total``, to one decimal; "<0.1" rather than a misleading 0.0."""
    if total <= 0:
        return ""
    share = size * 100 / total
    if 0 < share < 0.1:
        return "<0.1"
    return f"{share:.1f}"


@workspace_required()
@require_safe
def segment_detail(request: MemberRequest, pk: int) -> HttpResponse:
    """A segment's page. While its count is under way (pending or refreshing), a banner polls the
    page (``?seen=<state>``, htmx target ``segment-poll``): the same state answers 204 and the poll
    goes on; a new one answers the whole live part of the page (numbers, charts, members), swapped in
    place of the old, so that every part shows the same refresh. Polling stops with the count."""
    workspace = request.workspace
    segment = _segment_or_404(workspace, pk)
    target = request.htmx.target if request.htmx else None  # type: ignore[attr-defined]
    if target == "segment-poll" and request.GET.get("seen") == _live_state(segment):
        return HttpResponse(status=204)
    page, q = _members_page(request, segment)
    people = [(person, person_label(person), _person_detail(person)) for person in page.object_list]
    context: dict[str, Any] = {
        "section": "segments",
        "segment": segment,
        "page": page,
        "people": people,
        "q": q,
        "can_write": request.membership.can_write,
    }
    if target == "members":
        return render(request, "segmentation/segment_detail.html#members", context)
    days = selectors.segment_history(workspace, segment, days=ui_selectors.TREND_DAYS)
    chart_days = charts.padded(days, ui_selectors.TREND_DAYS)
    total = people_selectors.people_count(workspace)
    context.update(
        {
            "days": days,
            "size_chart": charts.size_chart(chart_days),
            "flow_chart": charts.flow_chart(chart_days),
            "entered_30": sum(d.entered for d in days),
            "exited_30": sum(d.exited for d in days),
            "busy": segment.status in (SegmentStatus.PENDING, SegmentStatus.REFRESHING),
            "counted": segment.refreshed_at is not None or segment.is_static,
            "live_state": _live_state(segment),
            "people_total": total,
            "share": _share(segment.size, total),
        }
    )
    if target == "segment-poll":
        response = render(request, "segmentation/segment_detail.html#live", context)
        return reswap(retarget(response, "#segment-live"), "outerHTML")
    context.update(
        {
            "sentence": _stored_sentence(workspace, segment),
            "data_starts": people_selectors.first_event_at(workspace),
            "webhooks": ui_selectors.segment_webhooks(workspace, segment),
            "referrers": ui_selectors.segment_referrers(workspace, segment),
            "definition_json": json.dumps(segment.definition, indent=2, ensure_ascii=False),
        }
    )
    return render(request, "segmentation/segment_detail.html", context)


@workspace_required()
@require_safe
def segment_members_csv(request: MemberRequest, pk: int) -> StreamingHttpResponse:
    """Every member, streamed in chunks; ``X-Segment-Size`` lets the page show progress while it downloads."""
    workspace = request.workspace
    segment = _segment_or_404(workspace, pk)
    members = selectors.segment_members(workspace, segment)

    def rows() -> Iterator[list[Any]]:
        for person in members.iterator(chunk_size=CSV_CHUNK):
            traits = person.traits if isinstance(person.traits, dict) else {}
            entered_at = person.entered_at  # type: ignore[attr-defined]
            yield [
                person.pk,
                person.user_id,
                traits.get("email"),
                traits.get("name"),
                entered_at.isoformat() if entered_at else "",
            ]

    lines = csv_lines(["person_id", "user_id", "email", "name", "entered_at"], rows())
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = slugify(segment.name) or f"segment-{segment.pk}"
    response["Content-Disposition"] = f'attachment; filename="{filename}-members.csv"'
    response["X-Segment-Size"] = str(segment.size)
    return response


@workspace_required(write="member")
@require_POST
def segment_refresh(request: MemberRequest, pk: int) -> HttpResponse:
    segment = _segment_or_404(request.workspace, pk)
    if segment.is_static:
        messages.info(request, "A static segment changes only when its list does; there is nothing to recompute.")
        return redirect("segment_detail", pk=segment.pk)
    services.segment_refresh_enqueue(segment=segment)
    messages.success(request, "Refresh queued: the size and members update in a moment.")
    return redirect("segment_detail", pk=segment.pk)


def _copy_name(workspace: Workspace, name: str) -> str:
    """The first free "<name> (copy)", "<name> (copy 2)"...: free as ``core.names`` compares names."""
    similar = Segment.objects.filter(workspace=workspace, name__istartswith=name[:150]).values_list("name", flat=True)
    taken = {name_key(other) for other in similar}
    base = f"{name[:180]} (copy)"
    candidate, number = base, 2
    while name_key(candidate) in taken:
        candidate = f"{name[:180]} (copy {number})"
        number += 1
    return candidate


@workspace_required(write="member")
@require_POST
def segment_duplicate(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    segment = _segment_or_404(workspace, pk)
    try:
        copy = services.segment_create(
            workspace=workspace,
            actor=request.user,
            name=_copy_name(workspace, segment.name),
            definition=segment.definition,
            static=segment.is_static,
            description=segment.description,
            tags=segment.tags,
        )
    except (ValidationError, DefinitionInvalid) as error:
        messages.error(request, f"Could not duplicate “{segment.name}”: {'; '.join(_messages(error))}")
        return redirect("segment_detail", pk=segment.pk)
    messages.success(request, f"Duplicated as “{copy.name}”. Adjust it and save.")
    if copy.is_static:
        return redirect("segment_detail", pk=copy.pk)
    return redirect("segment_edit", pk=copy.pk)


def _messages(error: ValidationError | DefinitionInvalid) -> list[str]:
    if isinstance(error, DefinitionInvalid):
        return [str(e) for e in error.errors]
    if hasattr(error, "error_dict"):
        return [message for messages_ in error.message_dict.values() for message in messages_]
    return list(error.messages)


@workspace_required(write="member")
@require_POST
def segment_delete(request: MemberRequest, pk: int) -> HttpResponse:
    """Delete, or refuse with the reason while something uses the segment (today: other segments'
    definitions; campaigns will refuse through the same service check)."""
    segment = _segment_or_404(request.workspace, pk)
    try:
        services.segment_delete(segment=segment, actor=request.user)
    except ValidationError as error:
        messages.error(request, f"Not deleted. {' '.join(_messages(error))} Remove it from there first.")
        return redirect("segment_detail", pk=segment.pk)
    messages.success(request, f"Segment “{segment.name}” deleted.")
    return redirect("segments")


# --- Overlap -------------------------------------------------------------------------------


@workspace_required()
@require_safe
def segment_overlap(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    raw = request.GET.getlist("s")
    try:
        chosen_ids = list(dict.fromkeys(int(value) for value in raw))
    except ValueError as error:
        raise Http404("No such segment") from error
    chosen = list(Segment.objects.filter(workspace=workspace, pk__in=chosen_ids).order_by(Lower("name"), "id"))
    if len(chosen) != len(chosen_ids):
        raise Http404("No such segment")
    too_many = len(chosen) > ui_selectors.MAX_OVERLAP
    matrix = None
    if 2 <= len(chosen) <= ui_selectors.MAX_OVERLAP:
        cells = ui_selectors.segment_overlap(workspace, chosen)
        matrix = [(row, [(column, cells[(row.pk, column.pk)]) for column in chosen]) for row in chosen]
    return render(
        request,
        "segmentation/segment_overlap.html",
        {
            "section": "segments",
            "segments": list(Segment.objects.filter(workspace=workspace).order_by(Lower("name"), "id")),
            "chosen_ids": {segment.pk for segment in chosen},
            "chosen": chosen,
            "matrix": matrix,
            "too_many": too_many,
            "max_overlap": ui_selectors.MAX_OVERLAP,
            "can_write": request.membership.can_write,
        },
    )


OVERLAP_KINDS = ("both", "only")
OVERLAP_NAME_TRIES = 20


def overlap_definition(kind: str, row: int, column: int) -> dict[str, Any]:
    """In both segments ("both"), or in the row's and not the column's ("only"), by ``segment`` conditions."""
    other: dict[str, Any] = {"type": "segment", "segment": column}
    if kind == "only":
        other = {"type": "not", "condition": other}
    return {"type": "and", "conditions": [{"type": "segment", "segment": row}, other]}


@workspace_required(write="member")
@require_POST
def segment_overlap_create(request: MemberRequest) -> HttpResponse:
    """One click on an overlap cell: a dynamic segment of the intersection or the difference, then its page.

    ``row`` and ``column`` name segments of this workspace (else 404), ``kind`` is both or only. The
    name says what it holds ("A and B", "A but not B"), numbered when taken; the first refresh
    is queued as for any new segment.
    """
    workspace = request.workspace
    row_id = person_views.segment_id_or_none(request.POST.get("row"))
    column_id = person_views.segment_id_or_none(request.POST.get("column"))
    row = selectors.segment_get(workspace, row_id) if row_id is not None else None
    column = selectors.segment_get(workspace, column_id) if column_id is not None else None
    if row is None or column is None:
        raise Http404("No such segment")
    kind = request.POST.get("kind", "")
    back = reverse("segment_overlap") + "?" + "&".join(f"s={pk}" for pk in _ints(request.POST.getlist("s")))
    if kind not in OVERLAP_KINDS or row.pk == column.pk:
        messages.error(request, "Choose two different segments, and whether people must be in both or only the first.")
        return redirect(back)
    base = f"{row.name} and {column.name}" if kind == "both" else f"{row.name} but not {column.name}"
    description = (
        f"People in “{row.name}” and in “{column.name}”, made from their overlap."
        if kind == "both"
        else f"People in “{row.name}” who are not in “{column.name}”, made from their overlap."
    )
    for attempt in range(1, OVERLAP_NAME_TRIES + 1):
        suffix = "" if attempt == 1 else f" ({attempt})"
        name = base[: 200 - len(suffix)].rstrip() + suffix
        try:
            created = services.segment_create(
                workspace=workspace,
                actor=request.user,
                name=name,
                definition=overlap_definition(kind, row.pk, column.pk),
                description=description[:2000],
            )
        except ValidationError as error:
            if "name" in getattr(error, "message_dict", {}) and attempt < OVERLAP_NAME_TRIES:
                continue  # taken: try the next number
            messages.error(request, f"Not created: {'; '.join(_messages(error))}")
            return redirect(back)
        except DefinitionInvalid as error:
            messages.error(request, f"Not created: {'; '.join(_messages(error))}")
            return redirect(back)
        messages.success(request, f"Segment “{created.name}” created from the overlap. Its members are being counted.")
        return redirect("segment_detail", pk=created.pk)
    return redirect(back)


def _ints(values: list[str]) -> list[int]:
    return [int(value) for value in values if value.isdigit() and len(value) <= 18]


# --- Why a person is in a segment (the person page's "Segments" section) ---------------------


@workspace_required()
@require_safe
def segment_why(request: MemberRequest) -> HttpResponse:
    """The explanation for ``?person=<id>&why=<segment id>``, as the person page's section shows it.

    htmx swaps it into that section; any other request goes to the person page, which renders the
    same explanation inline (``segmentation.person_views``). Another workspace's person or segment
    answers 404, as a missing one.
    """
    workspace = request.workspace
    person_id = person_views.segment_id_or_none(request.GET.get("person"))
    person = people_selectors.person_get(workspace, person_id) if person_id is not None else None
    if person is None:
        raise Http404("No such person in this workspace.")
    segment_id = person_views.segment_id_or_none(request.GET.get("why"))
    if not request.htmx:  # type: ignore[attr-defined]
        query = f"?why={segment_id}" if segment_id is not None else ""
        return redirect(reverse("person_detail", args=[person.pk]) + query + "#why")
    explanation = person_views.explanation_for(request, person, request.GET.get("why"))
    if explanation is None:
        if not request.GET.get("why"):
            return HttpResponse("")  # "Choose a segment": nothing to explain
        raise Http404("No such segment in this workspace.")
    return render(request, "segmentation/_why.html", {"explanation": explanation})
