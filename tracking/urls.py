"""Web routes of tracking: live events, people, quarantine; the snippet's files, configuration
and settings pages; Settings -> Data (the tracking plan)."""

from django.urls import path, re_path

from tracking import plan_views, snippet, views

urlpatterns = [
    path("events/", views.live_events, name="live_events"),
    path("events/quarantine/", views.quarantine, name="quarantine"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
    path("people/<int:pk>/erase/", views.person_erase, name="person_erase"),
    path("sdk/cohortly.js", snippet.snippet, name="snippet"),
    re_path(r"^sdk/cohortly\.(?P<version>[0-9a-f]{12})\.js$", snippet.snippet_versioned, name="snippet_versioned"),
    path("v1/config", snippet.snippet_config, name="snippet_config"),
    path("settings/install/", views.settings_install, name="settings_install"),
    path("settings/triggers/", views.settings_triggers, name="settings_triggers"),
    path("settings/triggers/<int:pk>/", views.settings_trigger_edit, name="settings_trigger_edit"),
    path("settings/triggers/<int:pk>/delete/", views.settings_trigger_delete, name="settings_trigger_delete"),
    path("settings/data/", plan_views.settings_data, name="settings_data"),
    path("settings/data/tracking-plan.json", plan_views.settings_data_export, name="settings_data_export"),
    path("settings/data/import/", plan_views.settings_data_import, name="settings_data_import"),
    path("settings/data/settings/", plan_views.settings_data_settings, name="settings_data_settings"),
    path("settings/data/events/add/", plan_views.settings_data_event_add, name="settings_data_event_add"),
    path("settings/data/events/update/", plan_views.settings_data_event_update, name="settings_data_event_update"),
    path("settings/data/events/remove/", plan_views.settings_data_event_remove, name="settings_data_event_remove"),
    path("settings/data/properties/add/", plan_views.settings_data_property_set, name="settings_data_property_set"),
    path(
        "settings/data/properties/change/",
        plan_views.settings_data_property_change,
        name="settings_data_property_change",
    ),
    path(
        "settings/data/properties/remove/",
        plan_views.settings_data_property_remove,
        name="settings_data_property_remove",
    ),
]
