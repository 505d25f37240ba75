"""Web routes of insights under /insights/, the clustering and propensity pages included."""

from django.urls import include, path

from insights import clustering_urls, propensity_urls, views

urlpatterns = [
    path("insights/", views.insights_home, name="insights"),
    path("insights/funnels/", views.insights_funnels, name="insights_funnels"),
    path("insights/funnels/segment/", views.insights_funnel_segment, name="insights_funnel_segment"),
    path("insights/retention/", views.insights_retention, name="insights_retention"),
    path("insights/retention/segment/", views.insights_retention_segment, name="insights_retention_segment"),
    path("insights/jobs/<int:pk>/", views.insights_job, name="insights_job"),
    path("insights/computed-traits/", views.insights_computed_traits, name="insights_computed_traits"),
    path(
        "insights/computed-traits/refresh/",
        views.insights_computed_traits_refresh,
        name="insights_computed_traits_refresh",
    ),
    path("insights/clusters/", include(clustering_urls.urlpatterns)),
    path("insights/propensity/", include(propensity_urls.urlpatterns)),
]
