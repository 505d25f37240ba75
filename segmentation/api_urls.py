from django.urls import path
from rest_framework.routers import DefaultRouter

from segmentation import api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.register("segments", api.SegmentViewSet, basename="segment")

# Before the router: its format-suffix routes would read "members.csv" as the members list in a "csv" format.
urlpatterns = [
    path("segments/<int:pk>/members.csv", api.SegmentMembersCsvView.as_view(), name="segment-members-csv"),
    *router.urls,
]
