"""Routes of predictive propensity, for ``insights.urls`` and ``insights.api_urls`` to include:

- ``urlpatterns``, the page and its form, under ``insights/propensity/``;
- ``api_urlpatterns``, the REST endpoints, under ``api/v1/insights/propensity/``.
"""

from django.urls import path

from insights import propensity_api, propensity_views

urlpatterns = [
    path("", propensity_views.propensity_page, name="insights_propensity"),
    path("run/", propensity_views.propensity_run, name="insights_propensity_run"),
]

api_urlpatterns = [
    path("", propensity_api.PropensityLatestView.as_view(), name="api-insights-propensity"),
    path("run/", propensity_api.PropensityRunView.as_view(), name="api-insights-propensity-run"),
    path("runs/<int:pk>/", propensity_api.PropensityRunDetailView.as_view(), name="api-insights-propensity-run-detail"),
]
