"""Insights and the people port: an erasure forgets the results broken down by a trait; old results go."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.tenancy import workspace_scope
from insights import jobs
from insights.models import InsightJob, InsightKind
from tests import factories
from tests.tracking import builders
from tracking.people_services import person_erase

FUNNEL = {"steps": [{"event": "A"}, {"event": "B"}], "within": "1d", "since": "30d", "until": None}


def _job(workspace, breakdown=None) -> InsightJob:
    with workspace_scope(workspace):
        return InsightJob.objects.create(
            workspace=workspace, kind=InsightKind.FUNNEL, params={**FUNNEL, "breakdown": breakdown}
        )


def test_erasing_a_person_forgets_results_broken_down_by_a_trait(db):
    workspace, other = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    ada = builders.person(workspace, user_id="ada", traits={"email": "ada@example.com"})
    by_email = _job(workspace, {"type": "trait", "key": "email"})
    plain = _job(workspace)
    by_segment = _job(workspace, {"type": "segment", "segments": [1]})
    theirs = _job(other, {"type": "trait", "key": "email"})

    with workspace_scope(workspace):
        assert person_erase(workspace=workspace, person=ada, actor=None) is not None
        logged = AuditLogEntry.objects.get(action="person.erased")
    assert logged.details["insight_results"] == 1
    left = set(InsightJob.objects.unscoped().values_list("pk", flat=True))
    assert left == {plain.pk, by_segment.pk, theirs.pk}
    assert by_email.pk not in left


def test_results_older_than_a_week_are_forgotten(db):
    workspace = factories.WorkspaceFactory()
    old, recent = _job(workspace), _job(workspace)
    InsightJob.objects.unscoped().filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert jobs.jobs_purge() == 1
    assert list(InsightJob.objects.unscoped().values_list("pk", flat=True)) == [recent.pk]
