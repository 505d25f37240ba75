"""The suggested segments page (/insights/clusters/): run a clustering, watch its progress, read the
clusters, make segments of them.

Everyone in the workspace reads the page; members and above run a clustering and make segments
(``workspace_required(write="member")`` answers a viewer's POST with 403). While a run is under
way the progress card polls itself through htmx; when the run ends, the poll answers with a
full reload so that the new results replace the old in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRefresh

from accounts.decorators import workspace_required
from accounts.requests import MemberRequest
from insights import clustering_selectors as selectors
from insights import clustering_services as services
from insights.clustering import NOTABLE_Z
from insights.clustering_charts import silhouette_chart
from insights.clustering_tasks import clustering_run_enqueue
from insights.models import ClusteringRun, ClusteringStatus
from segmentation.definition import DefinitionInvalid, parse
from segmentation.sentence import Part, sentence

PROGRESS_TARGET = "cluster-progress"


def _number(value: float, unit: str) -> str:
    if unit == "share":
        return f"{value:.0%}"
    if unit == "days":
        if value < 1:
            return f"{value * 24:.0f} h"
        return f"{value:,.1f} d" if value < 10 else f"{value:,.0f} d"
    if unit == "money":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


@dataclass(frozen=True)
class Measure:
    label: str
    centroid: str
    mean: str
    everyone: str
    direction: str  # "up", "down" or "": the centroid against everyone's, in standard deviations


@dataclass(frozen=True)
class Card:
    number: int
    index: int
    size: int
    share: str
    share_width: float
    identified: int
    description: str
    measures: list[Measure]
    rule: list[Part] | None
    precision: str
    recall: str
    matched: int | None
    rule_error: str


def _rule_sentence(definition: Any) -> list[Part] | None:
    try:
        return sentence(parse(definition))
    except DefinitionInvalid:
        return None


def _cards(run: ClusteringRun) -> list[Card]:
    cards = []
    for item in run.clusters:
        measures = []
        for feature in run.features:
            if feature.get("constant"):
                continue  # the same for everyone: it says nothing of any cluster
            key, unit = feature["key"], feature["unit"]
            z = float(item["z"].get(key, 0.0))
            measures.append(
                Measure(
                    label=feature["label"],
                    centroid=_number(float(item["centroid"].get(key, 0.0)), unit),
                    mean=_number(float(item.get("mean", {}).get(key, 0.0)), unit),
                    everyone=_number(float(feature.get("mean", 0.0)), unit),
                    direction="up" if z >= NOTABLE_Z else "down" if z <= -NOTABLE_Z else "",
                )
            )
        rule = item.get("rule") or {}
        cards.append(
            Card(
                number=item["index"] + 1,
                index=item["index"],
                size=item["size"],
                share=f"{float(item['share']):.0%}",
                share_width=round(max(0.5, 100 * float(item["share"])), 1),
                identified=item.get("identified", 0),
                description=item["description"],
                measures=measures,
                rule=_rule_sentence(rule["definition"]) if rule.get("definition") else None,
                precision=_percent(rule.get("precision")),
                recall=_percent(rule.get("recall")),
                matched=rule.get("matched"),
                rule_error=rule.get("error", ""),
            )
        )
    return cards


def _stability_words(ari: float | None) -> str:
    if ari is None:
        return ""
    if ari >= 0.9:
        return "Very stable: another seed finds the same clusters."
    if ari >= 0.75:
        return "Stable: another seed finds nearly the same clusters."
    if ari >= 0.5:
        return "Moderately stable: the clusters' edges move with the seed."
    return "Unstable: another seed splits people differently; treat these clusters as tentative."


@workspace_required()
@require_safe
def clusters_page(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    active = selectors.clustering_active(workspace)
    if request.htmx and request.htmx.target == PROGRESS_TARGET:  # type: ignore[attr-defined]
        if active is None:
            return HttpResponseClientRefresh()
        return render(request, "insights/clusters.html#progress", {"active": active})
    run = selectors.clustering_latest_done(workspace)
    context: dict[str, Any] = {
        "section": "insights",
        "active": active,
        "run": run,
        "failure": selectors.clustering_latest_failure(workspace),
        "can_write": request.membership.can_write,
    }
    if run is not None:
        context.update(
            {
                "chart": silhouette_chart(run.silhouette, run.k),
                "cards": _cards(run),
                "stability_words": _stability_words(run.stability_ari),
                "sampled": (run.sample_size or 0) < (run.population or 0),
            }
        )
    return render(request, "insights/clusters.html", context)


@workspace_required(write="member")
@require_POST
def clusters_run(request: MemberRequest) -> HttpResponse:
    run, created = services.clustering_run_request(workspace=request.workspace, actor=request.user)
    if created:
        clustering_run_enqueue(run)
        messages.success(request, "Clustering started: the results appear here when it is done.")
    else:
        messages.info(request, "A clustering is already under way: its results appear here when it is done.")
    return redirect("insights_clusters")


@workspace_required(write="member")
@require_POST
def cluster_segment(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    run = selectors.clustering_get(workspace, pk)
    if run is None or run.status != ClusteringStatus.DONE:
        raise Http404("No such clustering run.")
    kind = request.POST.get("kind")
    raw = request.POST.get("cluster", "")
    if kind not in ("static", "rule") or not raw.isdigit():
        messages.error(request, "Choose a cluster and the kind of segment to make of it.")
        return redirect("insights_clusters")
    make = services.cluster_static_segment_create if kind == "static" else services.cluster_rule_segment_create
    try:
        segment = make(workspace=workspace, run=run, cluster_index=int(raw), actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("insights_clusters")
    if kind == "static":
        messages.success(request, f"Static segment made with {segment.size:,} identified people of the cluster.")
    else:
        messages.success(request, "Rule-based segment made: its members are being computed.")
    return redirect("segment_detail", pk=segment.pk)
