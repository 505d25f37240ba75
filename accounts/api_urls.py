from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts import api

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
# JSON is the only format: "/api-keys.json" twins would only double the documented paths.
router.include_format_suffixes = False
router.register("api-keys", api.ApiKeyViewSet, basename="api-key")
router.register("members", api.MemberViewSet, basename="member")
router.register("invitations", api.InvitationViewSet, basename="invitation")
router.register("audit-log", api.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("workspace/", api.WorkspaceView.as_view(), name="api-workspace"),
    path("workspace/rotate-write-key/", api.WriteKeyRotateView.as_view(), name="api-workspace-rotate-write-key"),
    *router.urls,
]
