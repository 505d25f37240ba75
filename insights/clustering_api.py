"""REST endpoints of suggested segments (rest-api.md, "Insights"): /api/v1/insights/clusters/.

- ``GET .../clusters/``: the latest completed clustering (404 before the first);
- ``POST .../clusters/run/``: 202 with the run queued (or the one already under way);
- ``GET .../clusters/runs/{id}/``: one run, whatever its status: its progress while it runs;
- ``POST .../clusters/runs/{id}/segments/``: 201 with a segment made from one of its clusters.

Viewers read; members and above run and make segments (``accounts.permissions``).
Another workspace's run answers 404, as a missing one does.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import request_actor, request_workspace
from core.api import StrictSerializer
from insights import clustering_selectors as selectors
from insights import clustering_services as services
from insights.clustering_tasks import clustering_run_enqueue
from insights.models import ClusteringRun, ClusteringStatus


class SilhouetteSerializer(serializers.Serializer[Any]):
    k = serializers.IntegerField(help_text="clusters tried")
    score = serializers.FloatField(help_text="mean silhouette, -1 to 1: higher is better separated")


class FeatureSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(help_text="the key of this feature in each centroid")
    # Named like Field.label, harmlessly: DRF's metaclass moves declared fields out of the class.
    label = serializers.CharField()  # type: ignore[assignment]
    unit = serializers.CharField(help_text="days, count, money or share")
    log = serializers.BooleanField(help_text="taken as log1p before standardising")
    event = serializers.CharField(allow_null=True, help_text="the event it counts, if any")
    typical = serializers.FloatField(
        required=False, help_text="the population's centre (where its centroid would be), in the feature's unit"
    )
    mean = serializers.FloatField(required=False, help_text="the population's plain average")
    constant = serializers.BooleanField(required=False, help_text="one value for everyone: it separates nobody")


class RuleSerializer(serializers.Serializer[Any]):
    definition = serializers.JSONField(help_text="a segment definition (segment-definition.md)")
    precision = serializers.FloatField(
        allow_null=True, help_text="of the people the rule holds for, the share in the cluster"
    )
    recall = serializers.FloatField(allow_null=True, help_text="of the cluster, the share the rule holds for")
    matched = serializers.IntegerField(allow_null=True, help_text="people of the sample the rule holds for")


class ClusterSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="0 is the largest cluster")
    size = serializers.IntegerField(help_text="people of the sample in it")
    share = serializers.FloatField(help_text="of the sample")
    identified = serializers.IntegerField(help_text="people in it with a user id (what a static segment can list)")
    centroid = serializers.DictField(
        child=serializers.FloatField(),
        help_text="the K-means centre by feature key, read back in the feature's unit (counts and money through log1p)",
    )
    z = serializers.DictField(
        child=serializers.FloatField(), help_text="the centroid by feature key, in standard deviations from everyone's"
    )
    mean = serializers.DictField(child=serializers.FloatField(), help_text="plain averages over the cluster")
    description = serializers.CharField()
    rule = RuleSerializer(allow_null=True, help_text="null when no shallow rule separates the cluster")


class RunSerializer(serializers.ModelSerializer[ClusteringRun]):
    sampled = serializers.SerializerMethodField()
    silhouette = SilhouetteSerializer(many=True)
    features = FeatureSerializer(many=True)
    clusters = ClusterSerializer(many=True)

    class Meta:
        model = ClusteringRun
        fields = [
            "id",
            "status",
            "progress",
            "stage",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "computed_at",
            "population",
            "sample_size",
            "sampled",
            "k",
            "silhouette",
            "stability_ari",
            "features",
            "clusters",
            "seconds",
        ]
        read_only_fields = fields

    def get_sampled(self, run: ClusteringRun) -> bool:
        return run.sample_size is not None and run.population is not None and run.sample_size < run.population


class RunQueuedSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    stage = serializers.CharField()
    created = serializers.BooleanField(help_text="false when a run was already queued or under way")


class SegmentRequestSerializer(StrictSerializer):
    cluster = serializers.IntegerField(min_value=0, help_text="the cluster's index")
    kind = serializers.ChoiceField(
        choices=["static", "rule"],
        help_text="static: the cluster's identified people as a list; rule: a dynamic segment of the cluster's rule",
    )
    name = serializers.CharField(max_length=200, required=False, help_text="default: from the cluster's description")


class SegmentMadeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    static = serializers.BooleanField()
    definition = serializers.JSONField(allow_null=True)
    size = serializers.IntegerField()
    status = serializers.CharField()


def _run_or_404(request: Request, pk: int) -> ClusteringRun:
    run = selectors.clustering_get(request_workspace(request), pk)
    if run is None:
        raise exceptions.NotFound()
    return run


class ClusteringLatestView(APIView):
    @extend_schema(
        responses={
            200: RunSerializer,
            404: OpenApiResponse(description="No clustering has completed in this workspace yet."),
        }
    )
    def get(self, request: Request) -> Response:
        """The latest completed clustering: k, the silhouette per k tried, the stability, the clusters."""
        run = selectors.clustering_latest_done(request_workspace(request))
        if run is None:
            raise exceptions.NotFound(
                "No clustering has completed in this workspace yet: POST /api/v1/insights/clusters/run/ starts one."
            )
        return Response(RunSerializer(run).data)


class ClusteringRunView(APIView):
    @extend_schema(request=None, responses={202: RunQueuedSerializer})
    def post(self, request: Request) -> Response:
        """Queue a clustering of the workspace's people (202); one already queued or under way is answered instead."""
        with transaction.atomic():
            run, created = services.clustering_run_request(
                workspace=request_workspace(request), actor=request_actor(request)
            )
            if created:
                clustering_run_enqueue(run)
        body = {"id": run.pk, "status": run.status, "progress": run.progress, "stage": run.stage, "created": created}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ClusteringRunDetailView(APIView):
    def get_queryset(self) -> Any:
        """For the schema only: names the path's id after the run."""
        return ClusteringRun.objects.unscoped().none()

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """One run, whatever its status: progress and stage while it runs, the error if it failed."""
        return Response(RunSerializer(_run_or_404(request, pk)).data)


class ClusterSegmentView(APIView):
    def get_queryset(self) -> Any:
        """For the schema only: names the path's id after the run."""
        return ClusteringRun.objects.unscoped().none()

    @extend_schema(request=SegmentRequestSerializer, responses={201: SegmentMadeSerializer})
    def post(self, request: Request, pk: int) -> Response:
        """Make a segment of one cluster of a completed run: a static list of its identified people, or a
        dynamic segment of its rule (refreshed once created)."""
        run = _run_or_404(request, pk)
        data = SegmentRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if run.status != ClusteringStatus.DONE:
            raise serializers.ValidationError({"cluster": ["This run has no clusters: it has not completed."]})
        make = (
            services.cluster_static_segment_create
            if values["kind"] == "static"
            else services.cluster_rule_segment_create
        )
        segment = make(
            workspace=request_workspace(request),
            run=run,
            cluster_index=values["cluster"],
            actor=request_actor(request),
            name=values.get("name"),
        )
        body = {
            "id": segment.pk,
            "name": segment.name,
            "static": segment.is_static,
            "definition": segment.definition,
            "size": segment.size,
            "status": segment.status,
        }
        return Response(body, status=status.HTTP_201_CREATED)
