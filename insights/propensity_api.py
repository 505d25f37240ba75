"""REST endpoints of predictive propensity: /api/v1/insights/propensity/ (docs/insights.md, "Propensity";
the contract leaves them open).

- ``GET .../propensity/``: per target (``purchase``, ``churn``), its latest run whatever its status, or null;
- ``POST .../propensity/run/`` ``{"target", "horizon_days"}``: 202 with the run queued (or the one of that
  target already under way);
- ``GET .../propensity/runs/{id}/``: one run, its progress while it runs.

Viewers read; members and above run (``accounts.permissions``). Another workspace's run answers 404,
as a missing one does. Bad input answers 400 naming the field, and queues nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import request_actor, request_workspace
from core.api import StrictSerializer
from insights import propensity
from insights import propensity_selectors as selectors
from insights import propensity_services as services
from insights.models import PropensityRun
from insights.propensity_tasks import propensity_run_enqueue


class PropensityGroupSerializer(serializers.Serializer[Any]):
    group = serializers.IntegerField(help_text="1 holds the holdout's highest scores")
    people = serializers.IntegerField()
    predicted = serializers.FloatField(help_text="mean predicted probability")
    actual = serializers.FloatField(help_text="share who did it")


class PropensityWindowSerializer(serializers.Serializer[Any]):
    population = serializers.IntegerField(help_text="people with an event at or before the window's start")
    sample_size = serializers.IntegerField(help_text="of them, the people read (a uniform sample when more)")
    positives = serializers.IntegerField(help_text="of them, the people who did it in the window")
    base_rate = serializers.FloatField(allow_null=True)


class PropensityRunSerializer(serializers.ModelSerializer[PropensityRun]):
    trait = serializers.SerializerMethodField(help_text="the computed trait the score is written to")
    train = PropensityWindowSerializer(allow_null=True)
    validation = PropensityWindowSerializer(allow_null=True)
    groups = PropensityGroupSerializer(many=True)

    class Meta:
        model = PropensityRun
        fields = [
            "id",
            "target",
            "horizon_days",
            "trait",
            "status",
            "progress",
            "stage",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "computed_at",
            "verdict",
            "message",
            "auc",
            "train",
            "validation",
            "groups",
            "features",
            "scored",
            "people_changed",
            "seconds",
        ]
        read_only_fields = fields

    def get_trait(self, run: PropensityRun) -> str:
        return propensity.TRAIT_KEYS[run.target]


class PropensityLatestSerializer(serializers.Serializer[Any]):
    purchase = PropensityRunSerializer(allow_null=True)
    churn = PropensityRunSerializer(allow_null=True)


class PropensityRunRequestSerializer(StrictSerializer):
    target = serializers.ChoiceField(choices=list(propensity.TARGETS), help_text="purchase or churn")
    horizon_days = serializers.IntegerField(
        min_value=propensity.MIN_HORIZON_DAYS,
        max_value=propensity.MAX_HORIZON_DAYS,
        required=False,
        default=propensity.DEFAULT_HORIZON_DAYS,
        help_text="N: the probability is of the next N days",
    )

    def to_internal_value(self, data: Any) -> Any:
        # A whole number as JSON says it: DRF would take "30" and 30.0 too.
        if isinstance(data, dict) and "horizon_days" in data and not isinstance(data["horizon_days"], int | bool):
            raise serializers.ValidationError(
                {"horizon_days": [f"Expected a whole number of days, got {type(data['horizon_days']).__name__}."]}
            )
        return super().to_internal_value(data)


class PropensityRunQueuedSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    target = serializers.CharField()
    horizon_days = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    stage = serializers.CharField()
    created = serializers.BooleanField(help_text="false when a run of this target was already queued or under way")


class PropensityLatestView(APIView):
    @extend_schema(responses=PropensityLatestSerializer)
    def get(self, request: Request) -> Response:
        """Per target, its latest run whatever its status (null before the first): the holdout AUC, the base
        rates, the sample sizes, the score groups, and whether the score was written as a trait."""
        latest = selectors.propensity_latest(request_workspace(request))
        return Response(
            {target: None if run is None else PropensityRunSerializer(run).data for target, run in latest.items()}
        )


class PropensityRunView(APIView):
    @extend_schema(request=PropensityRunRequestSerializer, responses={202: PropensityRunQueuedSerializer})
    def post(self, request: Request) -> Response:
        """Queue a propensity run (202); one of the same target already queued or under way is answered instead."""
        data = PropensityRunRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        with transaction.atomic():
            run, created = services.propensity_run_request(
                workspace=request_workspace(request),
                actor=request_actor(request),
                target=values["target"],
                horizon_days=values["horizon_days"],
            )
            if created:
                propensity_run_enqueue(run)
        body = {
            "id": run.pk,
            "target": run.target,
            "horizon_days": run.horizon_days,
            "status": run.status,
            "progress": run.progress,
            "stage": run.stage,
            "created": created,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class PropensityRunDetailView(APIView):
    def get_queryset(self) -> Any:
        """For the schema only: names the path's id after the run."""
        return PropensityRun.objects.unscoped().none()

    @extend_schema(responses=PropensityRunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """One run, whatever its status: progress and stage while it runs, the error if it failed."""
        run = selectors.propensity_get(request_workspace(request), pk)
        if run is None:
            raise exceptions.NotFound()
        return Response(PropensityRunSerializer(run).data)
