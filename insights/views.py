"""HTML views of insights: the funnel builder, retention, computed traits settings, and job polling.

A funnel or a retention table is computed by a Celery task (``insights.jobs``): the page posts the
form, shows the job's progress (htmx polls ``/insights/jobs/<id>/``), then its chart. Computing
writes nothing, so every member may, viewers included; making a segment from a result or changing
the computed traits settings takes the member role (``workspace_required(write="member")``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.decorators import workspace_required
from accounts.models import Workspace
from accounts.requests import MemberRequest
from accounts.sql import execute_scoped, with_tables
from insights import charts, funnels, jobs, retention, traits
from insights.forms import OPERATORS, UNITS, WINDOWS, FunnelForm, RetentionForm
from insights.inputs import InputInvalid
from insights.models import InsightJob, InsightKind, RunStatus
from insights.tasks import computed_traits_refresh_task
from segmentation import services as segment_services
from segmentation.catalogue import selectors as catalogue
from segmentation.catalogue.models import PropertySource
from segmentation.definition import DefinitionInvalid
from segmentation.models import Segment
from tracking.models import Person

SUGGESTED_EVENTS = 40


def _job_or_404(workspace: Workspace, pk: Any, kind: str | None = None) -> InsightJob:
    if not (isinstance(pk, int) or (isinstance(pk, str) and pk.isdigit() and len(pk) < 19)):
        raise Http404
    jobs_of = InsightJob.objects.filter(workspace=workspace)
    if kind is not None:
        jobs_of = jobs_of.filter(kind=kind)
    return get_object_or_404(jobs_of, pk=int(pk))


def _common(request: MemberRequest, tab: str) -> dict[str, Any]:
    workspace = request.workspace
    return {
        "section": "insights",
        "insights_tab": tab,
        "can_write": request.membership.can_write,
        "event_names": [s.value for s in catalogue.event_names(workspace, limit=SUGGESTED_EVENTS)],
        "trait_keys": [
            s.value for s in catalogue.property_keys(workspace, source=PropertySource.TRAIT, limit=SUGGESTED_EVENTS)
        ],
        "segments": list(Segment.objects.filter(workspace=workspace).order_by("name").values_list("pk", "name")),
    }


def _job_context(job: InsightJob) -> dict[str, Any]:
    context: dict[str, Any] = {"job": job, "progress": jobs.job_progress(job)}
    if job.status == RunStatus.DONE and job.result:
        if job.kind == InsightKind.FUNNEL:
            steps = job.result["steps"]
            context["chart"] = charts.funnel_chart(steps)
            context["dropoffs"] = [
                {
                    "after": k + 1,
                    "event": steps[k]["event"],
                    "next": steps[k + 1]["event"],
                    "allowed": k + 1 < funnels.SEGMENT_MAX_STEPS,
                }
                for k in range(len(steps) - 1)
            ]
        else:
            context["heat"] = charts.heat_rows(job.result["cohorts"])
            context["offsets"] = list(range(len(job.result["cohorts"])))
    return context


# --- Funnels ---------------------------------------------------------------------------------------


@workspace_required()
@require_safe
def insights_home(request: MemberRequest) -> HttpResponse:
    return redirect("insights_funnels")


@workspace_required()
@require_http_methods(["GET", "HEAD", "POST"])
def insights_funnels(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    form, job = FunnelForm.initial(), None
    push: str | None = None
    if request.method == "POST":
        form = FunnelForm.from_post(request.POST)
        action = request.POST.get("action", "run")
        if action != "run":
            form.apply(action)
        else:
            document = form.document()
            if document is not None:
                try:
                    funnels.funnel_parse(document, now=timezone.now())
                except InputInvalid as error:
                    for path, problems in error.errors.items():
                        for problem in problems:
                            form.add_error(path, problem)
                else:
                    job = jobs.job_create(
                        workspace=workspace, actor=request.user, kind=InsightKind.FUNNEL, params=document
                    )
                    push = f"{reverse('insights_funnels')}?job={job.pk}"
                    if not request.htmx:  # type: ignore[attr-defined]
                        return HttpResponseRedirect(push)
    elif "job" in request.GET:
        job = _job_or_404(workspace, request.GET["job"], InsightKind.FUNNEL)
        form = FunnelForm.from_document(job.params)
    context = {**_common(request, "funnels"), "form": form, "operators": OPERATORS, "windows": WINDOWS, "units": UNITS}
    if job is not None:
        context.update(_job_context(job))
    status = 400 if form.errors else 200
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, "insights/funnels.html#funnel-page", context, status=status)
    else:
        response = render(request, "insights/funnels.html", context, status=status)
    if push:
        response["HX-Push-Url"] = push
    return response


@workspace_required()
@require_safe
def insights_job(request: MemberRequest, pk: int) -> HttpResponse:
    """A job's progress, then its result: the partial the pages poll."""
    job = _job_or_404(request.workspace, pk)
    page = "insights_funnels" if job.kind == InsightKind.FUNNEL else "insights_retention"
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect(f"{reverse(page)}?job={job.pk}")
    context = {**_job_context(job), "can_write": request.membership.can_write}
    template = "insights/_funnel_result.html" if job.kind == InsightKind.FUNNEL else "insights/_retention_result.html"
    return render(request, template, context)


def _unique_name(workspace: Workspace, name: str) -> str:
    """``name``, or ``name (2)``, ``(3)``... when a segment already has it."""
    name = name[:180]
    taken = set(Segment.objects.filter(workspace=workspace, name__startswith=name).values_list("name", flat=True))
    if name not in taken:
        return name
    return next(f"{name} ({n})" for n in range(2, len(taken) + 3) if f"{name} ({n})" not in taken)


def _create_segment(request: MemberRequest, name: str, definition: dict[str, Any], back: str) -> HttpResponse:
    try:
        with transaction.atomic():
            segment = segment_services.segment_create(
                workspace=request.workspace,
                actor=request.user,
                name=_unique_name(request.workspace, name),
                definition=definition,
                description="Made from an insight.",
            )
    except (DefinitionInvalid, ValidationError) as error:
        messages.error(request, f"The segment could not be made: {error}")
        return redirect(back)
    messages.success(request, f"Segment “{segment.name}” created; its members are being counted.")
    url = reverse("segment_detail", args=[segment.pk])
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@workspace_required(write="member")
@require_POST
def insights_funnel_segment(request: MemberRequest) -> HttpResponse:
    job = _job_or_404(request.workspace, request.POST.get("job"), InsightKind.FUNNEL)
    back = f"{reverse('insights_funnels')}?job={job.pk}"
    spec = funnels.funnel_parse(job.params, now=timezone.now())
    raw = request.POST.get("dropped_after", "")
    try:
        definition = funnels.dropoff_definition(spec, int(raw) if raw.isdigit() and len(raw) < 3 else 0)
    except InputInvalid as error:
        messages.error(request, " ".join(m for ms in error.errors.values() for m in ms))
        return redirect(back)
    k = definition["dropped_after"]
    name = f"Dropped off after {spec.steps[k - 1].event} (step {k}, before {spec.steps[k].event})"
    return _create_segment(request, name, definition, back)


# --- Retention -------------------------------------------------------------------------------------


@workspace_required()
@require_http_methods(["GET", "HEAD", "POST"])
def insights_retention(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    form, job = RetentionForm(), None
    if request.method == "POST":
        form = RetentionForm.from_post(request.POST)
        document = form.document()
        try:
            spec = retention.retention_parse(document)
            if spec.segment is not None and not Segment.objects.filter(workspace=workspace, pk=spec.segment).exists():
                raise InputInvalid({"segment": ["Choose a segment of this workspace."]})
        except InputInvalid as error:
            form.errors = error.errors
        else:
            job = jobs.job_create(
                workspace=workspace, actor=request.user, kind=InsightKind.RETENTION, params=spec.document
            )
            return HttpResponseRedirect(f"{reverse('insights_retention')}?job={job.pk}")
    elif "job" in request.GET:
        job = _job_or_404(workspace, request.GET["job"], InsightKind.RETENTION)
        form = RetentionForm.from_document(job.params)
    context = {**_common(request, "retention"), "form": form, "periods": retention.PERIODS}
    if job is not None:
        context.update(_job_context(job))
    return render(request, "insights/retention.html", context, status=400 if form.errors else 200)


@workspace_required(write="member")
@require_POST
def insights_retention_segment(request: MemberRequest) -> HttpResponse:
    job = _job_or_404(request.workspace, request.POST.get("job"), InsightKind.RETENTION)
    back = f"{reverse('insights_retention')}?job={job.pk}"
    spec = retention.retention_parse(job.params)
    start, _, offset = request.POST.get("cell", "").partition(":")
    try:
        cohort_start = date.fromisoformat(start)
        shift = int(offset) if offset.isdigit() and len(offset) < 4 else None
        definition = retention.cell_definition(spec, cohort_start, shift, now=timezone.now())
    except (ValueError, InputInvalid):
        messages.error(request, "That cell is not in the table any more: compute it again.")
        return redirect(back)
    what = f"came back {shift} {spec.period}{'s' if shift != 1 else ''} later" if shift else None
    if shift == 0:
        what = f"did {spec.return_event} the same {spec.period}"
    name = f"{spec.start_event} cohort of {cohort_start.isoformat()}" + (f", {what}" if what else "")
    return _create_segment(request, name, definition, back)


# --- Computed traits ------------------------------------------------------------------------------

_GROUP_SIZES = with_tables(
    "SELECT p.traits ->> '$rfm_group', count(*) FROM {person} p WHERE p.workspace_id = %(workspace_id)s "
    "AND p.traits ? '$rfm_group' GROUP BY 1",
    person=Person,
)


def _group_sizes(workspace: Workspace) -> list[tuple[str, str, int]]:
    """Each RFM group, its rule, and how many people are in it now."""
    with connection.cursor() as cursor:
        execute_scoped(cursor, _GROUP_SIZES, workspace_id=workspace.pk)
        found = dict(cursor.fetchall())
    return [(name, rule, found.get(name, 0)) for name, rule in traits.RFM_RULES]


def _weights_rows(workspace: Workspace, weights: dict[str, float]) -> list[tuple[str, str]]:
    rows = [(name, f"{weight:g}") for name, weight in sorted(weights.items())]
    for suggestion in catalogue.event_names(workspace, limit=12):
        if suggestion.value not in weights:
            rows.append((suggestion.value, ""))
    return rows + [("", "")] * 3


@workspace_required(write="member")
@require_http_methods(["GET", "HEAD", "POST"])
def insights_computed_traits(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    row = traits.settings_for(workspace)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values, errors = _settings_from_post(request)
        if not errors:
            try:
                traits.settings_update(workspace=workspace, actor=request.user, **values)
            except ValidationError as error:
                errors = error.message_dict
            else:
                messages.success(request, "Saved. The computed traits are recomputed within a few minutes.")
                return redirect("insights_computed_traits")
    busy = row.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    context = {
        **_common(request, "traits"),
        "settings": row,
        "busy": busy,
        "errors": errors,
        "posted": request.POST if request.method == "POST" else None,
        "weights": _weights_rows(workspace, row.engagement_weights or {}),
        "groups": _group_sizes(workspace),
        "keys": traits.COMPUTED_KEYS,
    }
    if request.htmx and request.method == "GET":  # type: ignore[attr-defined]
        return render(request, "insights/computed_traits.html#traits-state", context)
    return render(request, "insights/computed_traits.html", context, status=400 if errors else 200)


def _settings_from_post(request: MemberRequest) -> tuple[dict[str, Any], dict[str, list[str]]]:
    data = request.POST
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {
        "rfm_event": data.get("rfm_event", "").strip(),
        "rfm_revenue_property": data.get("rfm_revenue_property", "").strip(),
    }
    for name in ("engagement_default_weight", "engagement_half_life_days"):
        try:
            values[name] = float(data.get(name, ""))
        except ValueError:
            errors[name] = ["Give a number."]
    weights: dict[str, float] = {}
    rows = data.get("weights", "0")
    for i in range(min(int(rows), traits.MAX_WEIGHTED_EVENTS + 50) if rows.isdigit() and len(rows) < 6 else 0):
        event, weight = data.get(f"weight-event-{i}", "").strip(), data.get(f"weight-value-{i}", "").strip()
        if not event or not weight:
            continue
        try:
            weights[event] = float(weight)
        except ValueError:
            errors.setdefault("engagement_weights", []).append(f"The weight of {event!r} must be a number.")
    values["engagement_weights"] = weights
    return values, errors


@workspace_required(write="member")
@require_POST
def insights_computed_traits_refresh(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    traits.settings_for(workspace)
    traits.mark_queued(workspace_ids=[workspace.pk])
    transaction.on_commit(lambda: computed_traits_refresh_task.delay(workspace.pk))
    messages.success(request, "Recomputing the computed traits now.")
    return redirect("insights_computed_traits")
