"""REST routes of insights under /api/v1/insights/, the clustering and propensity ones included."""

from django.urls import include, path

from insights import api, clustering_urls, propensity_urls

urlpatterns = [
    path("insights/funnel/", api.FunnelView.as_view(), name="insights-funnel"),
    path("insights/funnel/segment/", api.FunnelSegmentView.as_view(), name="insights-funnel-segment"),
    path("insights/retention/", api.RetentionView.as_view(), name="insights-retention"),
    path("insights/retention/segment/", api.RetentionSegmentView.as_view(), name="insights-retention-segment"),
    path("insights/computed-traits/", api.ComputedTraitsView.as_view(), name="insights-computed-traits"),
    path(
        "insights/computed-traits/refresh/",
        api.ComputedTraitsRefreshView.as_view(),
        name="insights-computed-traits-refresh",
    ),
    path("insights/clusters/", include(clustering_urls.api_urlpatterns)),
    path("insights/propensity/", include(propensity_urls.api_urlpatterns)),
]
