"""Web pages of campaigns' results (``/campaigns/<id>/results/``) and of Settings → Campaigns
(``/settings/campaigns/``): frequency caps, sending settings, the development outbox."""

from django.urls import path

from campaigns import result_views, settings_views

urlpatterns = [
    path("campaigns/<int:pk>/results/", result_views.campaign_results_page, name="campaign_results"),
    path("campaigns/<int:pk>/results/segment/", result_views.campaign_results_segment, name="campaign_results_segment"),
    path("settings/campaigns/", settings_views.settings_campaigns, name="settings_campaigns"),
    path("settings/campaigns/caps/", settings_views.settings_campaign_cap_add, name="settings_campaign_cap_add"),
    path(
        "settings/campaigns/caps/<int:pk>/delete/",
        settings_views.settings_campaign_cap_delete,
        name="settings_campaign_cap_delete",
    ),
    path("settings/campaigns/outbox/", settings_views.settings_campaign_outbox, name="settings_campaign_outbox"),
]
