from rest_framework.routers import DefaultRouter

from segmentation.webhooks import api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.include_format_suffixes = False
router.register("webhooks", api.WebhookViewSet, basename="webhook")

urlpatterns = router.urls
