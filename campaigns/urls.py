"""Public engagement links of campaign emails under ``/e/``, ESPs' tracking webhooks under ``/anymail/``,
and the snippet's on-site messages under ``/v1/``."""

from django.urls import path

from campaigns import onsite_views, views

engagement_urlpatterns = [
    path("o/<str:token>/", views.open_pixel, name="campaign_open"),
    path("c/<str:token>/", views.click, name="campaign_click"),
    path("u/<str:token>/", views.unsubscribe, name="campaign_unsubscribe"),
]

esp_urlpatterns = [
    path("<str:esp>/tracking/", views.esp_tracking, name="campaign_esp_tracking"),
]

# The snippet's on-site messages, under ``/v1/`` beside the tracking API (public, by write key).
onsite_urlpatterns = [
    path("messages", onsite_views.messages, name="onsite_messages"),
    path("messages/<int:send_id>/<str:action>", onsite_views.message_event, name="onsite_message_event"),
]
