from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("signup/sent/", views.signup_sent, name="signup_sent"),
    path("signup/confirm/<str:token>/", views.signup_confirm, name="signup_confirm"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        views.PasswordResetView.as_view(
            template_name="accounts/password_reset.html",
            email_template_name="accounts/password_reset_email.txt",
            subject_template_name="accounts/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(template_name="accounts/password_reset_confirm.html"),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
    path("workspaces/new/", views.workspace_new, name="workspace_new"),
    path("workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("settings/", views.settings_workspace, name="settings_workspace"),
    path("settings/members/", views.settings_members, name="settings_members"),
    path("settings/members/<int:pk>/role/", views.settings_member_role, name="settings_member_role"),
    path("settings/members/<int:pk>/remove/", views.settings_member_remove, name="settings_member_remove"),
    path("settings/invitations/", views.settings_invitations, name="settings_invitations"),
    path("settings/invitations/<int:pk>/revoke/", views.settings_invitation_revoke, name="settings_invitation_revoke"),
    path("settings/api-keys/", views.settings_api_keys, name="settings_api_keys"),
    path("settings/api-keys/<int:pk>/revoke/", views.settings_api_key_revoke, name="settings_api_key_revoke"),
    path("settings/write-key/", views.settings_write_key, name="settings_write_key"),
    path("settings/audit-log/", views.settings_audit_log, name="settings_audit_log"),
]
