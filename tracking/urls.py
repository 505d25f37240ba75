"""Routes of the snippet: its public files and configuration, and its settings pages."""

from django.urls import path, re_path

from tracking import snippet, views

urlpatterns = [
    path("sdk/cohortly.js", snippet.snippet, name="snippet"),
    re_path(r"^sdk/cohortly\.(?P<version>[0-9a-f]{12})\.js$", snippet.snippet_versioned, name="snippet_versioned"),
    path("v1/config", snippet.snippet_config, name="snippet_config"),
    path("settings/install/", views.settings_install, name="settings_install"),
    path("settings/triggers/", views.settings_triggers, name="settings_triggers"),
    path("settings/triggers/<int:pk>/", views.settings_trigger_edit, name="settings_trigger_edit"),
    path("settings/triggers/<int:pk>/delete/", views.settings_trigger_delete, name="settings_trigger_delete"),
]
