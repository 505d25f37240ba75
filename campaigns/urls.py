"""Web routes of campaigns: the pages under ``/campaigns/``; public engagement links of campaign
emails under ``/e/``, ESPs' tracking webhooks under ``/anymail/``, and the snippet's on-site
messages under ``/v1/``."""

from django.urls import path

from campaigns import onsite_views, pages, views

urlpatterns = [
    path("campaigns/", pages.campaign_list, name="campaigns"),
    path("campaigns/new/", pages.campaign_new, name="campaign_new"),
    path("campaigns/estimate/", pages.campaign_estimate, name="campaign_estimate"),
    path("campaigns/playbooks/<slug:slug>/", pages.campaign_from_playbook, name="campaign_from_playbook"),
    path("campaigns/<int:pk>/", pages.campaign_edit, name="campaign_edit"),
    path("campaigns/<int:pk>/people/", pages.campaign_people, name="campaign_people"),
    path("campaigns/<int:pk>/preview/", pages.campaign_preview, name="campaign_preview"),
    path("campaigns/<int:pk>/test/", pages.campaign_test, name="campaign_test"),
    path("campaigns/<int:pk>/launch/", pages.campaign_launch, name="campaign_launch"),
    path("campaigns/<int:pk>/pause/", pages.campaign_pause, name="campaign_pause"),
    path("campaigns/<int:pk>/progress/", pages.campaign_progress, name="campaign_progress"),
]

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
