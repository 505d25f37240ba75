"""The tracking API, mounted at ``/v1/`` (Segment's paths)."""

from django.urls import path

from tracking import ingest_views

urlpatterns = [
    path("batch", ingest_views.batch, name="ingest-batch"),
    path("track", ingest_views.track, name="ingest-track"),
    path("identify", ingest_views.identify, name="ingest-identify"),
    path("page", ingest_views.page, name="ingest-page"),
    path("screen", ingest_views.screen, name="ingest-screen"),
    path("group", ingest_views.group, name="ingest-group"),
    path("alias", ingest_views.alias, name="ingest-alias"),
]
