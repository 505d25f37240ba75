"""Settings pages of webhooks."""

from django.urls import path

from segmentation.webhooks import views

urlpatterns = [
    path("settings/webhooks/", views.settings_webhooks, name="settings_webhooks"),
    path("settings/webhooks/<int:pk>/", views.settings_webhook_detail, name="settings_webhook_detail"),
    path("settings/webhooks/<int:pk>/test/", views.settings_webhook_test, name="settings_webhook_test"),
    path("settings/webhooks/<int:pk>/rotate/", views.settings_webhook_rotate, name="settings_webhook_rotate"),
    path("settings/webhooks/<int:pk>/delete/", views.settings_webhook_delete, name="settings_webhook_delete"),
]
