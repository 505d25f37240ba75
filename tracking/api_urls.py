from django.urls import path
from rest_framework.routers import DefaultRouter

from tracking import api, plan_api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.register("people", api.PersonViewSet, basename="person")
router.register("events", api.EventViewSet, basename="event")
router.register("quarantine", api.QuarantineViewSet, basename="quarantine")
router.register("export/people", api.PersonExportView, basename="person-export")

urlpatterns = [
    path("tracking-plan/", plan_api.TrackingPlanView.as_view(), name="api-tracking-plan"),
    *router.urls,
]
