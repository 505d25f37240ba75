"""Public engagement links of campaign emails (``campaigns.views``), under ``/e/``."""

from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("o/<str:token>/", views.open_pixel, name="open"),
    path("c/<str:token>/", views.click, name="click"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
