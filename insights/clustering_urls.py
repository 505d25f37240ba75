"""Routes of suggested segments, for ``config.urls`` to include:

- ``urlpatterns``, the page and its forms, under ``insights/clusters/``;
- ``api_urlpatterns``, the REST endpoints, under ``api/v1/insights/clusters/``.
"""

from django.urls import path

from insights import clustering_api, clustering_views

urlpatterns = [
    path("", clustering_views.clusters_page, name="insights_clusters"),
    path("run/", clustering_views.clusters_run, name="insights_clusters_run"),
    path("runs/<int:pk>/segments/", clustering_views.cluster_segment, name="insights_cluster_segment"),
]

api_urlpatterns = [
    path("", clustering_api.ClusteringLatestView.as_view(), name="api-insights-clusters"),
    path("run/", clustering_api.ClusteringRunView.as_view(), name="api-insights-clusters-run"),
    path("runs/<int:pk>/", clustering_api.ClusteringRunDetailView.as_view(), name="api-insights-clusters-run-detail"),
    path(
        "runs/<int:pk>/segments/",
        clustering_api.ClusterSegmentView.as_view(),
        name="api-insights-clusters-run-segments",
    ),
]
