from rest_framework.routers import DefaultRouter

from tracking import api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.register("people", api.PersonViewSet, basename="person")
router.register("events", api.EventViewSet, basename="event")

urlpatterns = router.urls
