"""Web routes of segments: the list, the builder, a segment's page and its actions, overlap; the
builder's JSON helpers (live preview, catalogue autocomplete); the events catalogue page."""

from django.urls import path

from segmentation import views
from segmentation.catalogue import views as catalogue_views

urlpatterns = [
    path("events/catalogue/", catalogue_views.event_catalogue, name="event_catalogue"),
    path("segments/", views.segment_list, name="segments"),
    path("segments/new/", views.segment_new, name="segment_new"),
    path("segments/overlap/", views.segment_overlap, name="segment_overlap"),
    path("segments/overlap/segment/", views.segment_overlap_create, name="segment_overlap_create"),
    path("segments/preview/", views.segment_builder_preview, name="segment_builder_preview"),
    path("segments/catalogue/", views.segment_catalogue, name="segment_catalogue"),
    path("segments/why/", views.segment_why, name="segment_why"),
    path("segments/<int:pk>/", views.segment_detail, name="segment_detail"),
    path("segments/<int:pk>/edit/", views.segment_edit, name="segment_edit"),
    path("segments/<int:pk>/members.csv", views.segment_members_csv, name="segment_members_csv"),
    path("segments/<int:pk>/refresh/", views.segment_refresh, name="segment_refresh"),
    path("segments/<int:pk>/duplicate/", views.segment_duplicate, name="segment_duplicate"),
    path("segments/<int:pk>/delete/", views.segment_delete, name="segment_delete"),
]
