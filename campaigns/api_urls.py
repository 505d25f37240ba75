from django.urls import path
from rest_framework.routers import DefaultRouter

from campaigns import api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.include_format_suffixes = False
router.register("campaigns", api.CampaignViewSet, basename="campaign")
router.register("frequency-caps", api.FrequencyCapViewSet, basename="frequency-cap")

urlpatterns = [
    path("campaign-settings/", api.CampaignSettingsView.as_view(), name="campaign-settings"),
    *router.urls,
]
