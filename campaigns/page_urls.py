"""Web pages of campaigns' results (under ``/campaigns/<id>/results/``) and of Settings → Campaigns
(under ``/settings/campaigns/``): frequency caps, sending settings, the development outbox."""

from django.urls import path

from campaigns import result_views, settings_views

result_urlpatterns = [
    path("", result_views.campaign_results_page, name="campaign_results"),
    path("segment/", result_views.campaign_results_segment, name="campaign_results_segment"),
]

settings_urlpatterns = [
    path("", settings_views.settings_campaigns, name="settings_campaigns"),
    path("caps/", settings_views.settings_campaign_cap_add, name="settings_campaign_cap_add"),
    path("caps/<int:pk>/delete/", settings_views.settings_campaign_cap_delete, name="settings_campaign_cap_delete"),
    path("outbox/", settings_views.settings_campaign_outbox, name="settings_campaign_outbox"),
]
