from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from campaigns import urls as campaign_urls
from config import views

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("tracking.api_urls")),
    path("", include("segmentation.webhooks.api_urls")),
    path("", include("segmentation.api_urls")),
    path("", include("insights.api_urls")),
    path("", include("campaigns.api_urls")),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # A campaign's results page, Settings -> Campaigns and the development outbox.
    path("", include("campaigns.page_urls")),
    path("", include("accounts.urls")),
    path("", include("tracking.urls")),
    path("", include("segmentation.webhooks.urls")),
    path("", include("segmentation.urls")),
    path("", include("insights.urls")),
    path("", include(campaign_urls.urlpatterns)),
    path("api/v1/", include(api_v1)),
    path("v1/", include("tracking.ingest_urls")),
    # The snippet's on-site messages (public, by write key, like the tracking API).
    path("v1/", include(campaign_urls.onsite_urlpatterns)),
    # Campaign emails' opens, clicks and unsubscribes (public, signed links), and ESPs' tracking webhooks.
    path("e/", include(campaign_urls.engagement_urlpatterns)),
    path("anymail/", include(campaign_urls.esp_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL of its own: no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
