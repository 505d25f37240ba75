"""Public engagement links of campaign emails under ``/e/``, and ESPs' tracking webhooks under ``/anymail/``."""

from django.urls import path

from campaigns import views

engagement_urlpatterns = [
    path("o/<str:token>/", views.open_pixel, name="campaign_open"),
    path("c/<str:token>/", views.click, name="campaign_click"),
    path("u/<str:token>/", views.unsubscribe, name="campaign_unsubscribe"),
]

esp_urlpatterns = [
    path("<str:esp>/tracking/", views.esp_tracking, name="campaign_esp_tracking"),
]
