"""The propensity page (/insights/propensity/): for purchase and churn, the latest model's holdout
AUC, base rate, sample sizes and score groups, a run button with its progress, and why there is no
score when there is none.

Everyone in the workspace reads the page; members and above run a model
(``workspace_required(write="member")`` answers a viewer's POST with 403). While a run is under way
the progress card polls itself through htmx; when no run is left, the poll answers with a full
reload so that the new figures replace the old in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRefresh

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from insights import propensity
from insights import propensity_selectors as selectors
from insights import propensity_services as services
from insights.models import PropensityRun, PropensityTarget, PropensityVerdict
from insights.propensity_charts import GroupsChart, groups_chart
from insights.propensity_tasks import propensity_run_enqueue

PROGRESS_TARGET = "propensity-progress"


@dataclass(frozen=True)
class Section:
    target: str
    label: str
    trait: str
    question: str
    active: PropensityRun | None
    run: PropensityRun | None  # the latest completed run
    failure: PropensityRun | None  # the latest run, when it failed after it
    chart: GroupsChart | None


_QUESTIONS = {
    PropensityTarget.PURCHASE: "the probability that a person buys (the purchase event) in the next N days",
    PropensityTarget.CHURN: "the probability that a person sends no event at all in the next N days",
}


def _sections(request: MemberRequest) -> list[Section]:
    workspace = request.workspace
    latest = selectors.propensity_latest(workspace)
    sections = []
    for target in PropensityTarget:
        run = selectors.propensity_latest_done(workspace, target)
        last = latest[target]
        base_rate = (run.validation or {}).get("base_rate") if run is not None else None
        sections.append(
            Section(
                target=target.value,
                label=target.label,
                trait=propensity.TRAIT_KEYS[target.value],
                question=_QUESTIONS[target],
                active=selectors.propensity_active(workspace, target),
                run=run,
                failure=last if last is not None and last.status == "failed" else None,
                chart=groups_chart(run.groups, base_rate) if run is not None and run.groups else None,
            )
        )
    return sections


@workspace_required()
@require_safe
def propensity_page(request: MemberRequest) -> HttpResponse:
    sections = _sections(request)
    active = [section.active for section in sections if section.active is not None]
    if request.htmx and request.htmx.target == PROGRESS_TARGET:  # type: ignore[attr-defined]
        if not active:
            return HttpResponseClientRefresh()
        return render(request, "insights/propensity.html#progress", {"active": active})
    context: dict[str, Any] = {
        "section": "insights",
        "insights_tab": "propensity",
        "sections": sections,
        "active": active,
        "can_write": request.membership.can_write,
        "scored": PropensityVerdict.SCORED,
        "insufficient": PropensityVerdict.INSUFFICIENT,
        "min_people": propensity.MIN_PEOPLE,
        "min_class": propensity.MIN_CLASS,
        "auc_floor": propensity.AUC_FLOOR,
        "horizon_default": propensity.DEFAULT_HORIZON_DAYS,
        "horizon_min": propensity.MIN_HORIZON_DAYS,
        "horizon_max": propensity.MAX_HORIZON_DAYS,
        "max_sample": propensity.MAX_SAMPLE,
    }
    return render(request, "insights/propensity.html", context)


@workspace_required(write="member")
@require_POST
def propensity_run(request: MemberRequest) -> HttpResponse:
    target = request.POST.get("target", "")
    raw = request.POST.get("horizon_days", "").strip()
    days = int(raw) if raw.isdigit() and len(raw) <= 3 else None
    if (
        target not in propensity.TARGETS
        or days is None
        or not (propensity.MIN_HORIZON_DAYS <= days <= propensity.MAX_HORIZON_DAYS)
    ):
        messages.error(
            request,
            f"Choose purchase or churn, and a horizon of {propensity.MIN_HORIZON_DAYS} to "
            f"{propensity.MAX_HORIZON_DAYS} days.",
        )
        return redirect("insights_propensity")
    run, created = services.propensity_run_request(
        workspace=request.workspace, actor=request.user, target=target, horizon_days=days
    )
    if created:
        propensity_run_enqueue(run)
        messages.success(request, "Training started: the figures appear here when it is done.")
    else:
        messages.info(request, "A model of this target is already being trained: its figures appear here when done.")
    return redirect("insights_propensity")
