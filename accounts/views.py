"""HTML views: sign-up, login, workspaces, members, invitations, keys, audit log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts import reveal, selectors, services, throttle
from accounts import signup as signup_flow
from accounts.decorators import workspace_required
from accounts.forms import (
    ApiKeyForm,
    EmailAuthenticationForm,
    InvitationForm,
    JoinForm,
    PasswordConfirmForm,
    RoleForm,
    SignupForm,
    WorkspaceForm,
)
from accounts.middleware import SESSION_WORKSPACE_KEY
from accounts.models import ApiKey, Invitation, Role, User
from accounts.requests import AuthenticatedRequest, MemberRequest
from core import ratelimit


def _throttled(response: HttpResponse, wait: int) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(wait)
    return response


def signup(request: HttpRequest) -> HttpResponse:
    """The same answer, "check your inbox", for a new email and a taken one (see ``accounts.signup``)."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        wait = throttle.signup_wait(request, email)
        if wait:
            form.add_error(
                None,
                f"Too many sign-ups for this email or from your network. Wait {ratelimit.wait_text(wait)} "
                "and try again; a link already emailed to you still works.",
            )
            return _throttled(render(request, "accounts/signup.html", {"form": form}), wait)
        signup_flow.signup_request(
            email=email,
            password=form.cleaned_data["password"],
            name=form.cleaned_data["name"],
            workspace_name=form.cleaned_data["workspace_name"],
            site_url=request.build_absolute_uri("/"),
        )
        return redirect("signup_sent")
    return render(request, "accounts/signup.html", {"form": form})


@require_safe
def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_sent.html")


def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: a page with a button (mail scanners follow links but do not press buttons)."""
    pending = signup_flow.signup_pending(token)
    if pending is None:
        message = "This sign-up link has expired or was used already. Sign up again, or sign in."
        return render(request, "error.html", {"status": 404, "message": message}, status=404)
    if request.method == "POST":
        try:
            created = signup_flow.signup_confirm(token=token)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("login")
        if created is None:  # a concurrent click of the same link won
            return redirect("login")
        user, workspace = created
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_WORKSPACE_KEY] = workspace.pk
        messages.success(request, f"Welcome to Cohortly. {workspace.name} is ready.")
        return redirect("dashboard")
    return render(request, "accounts/signup_confirm.html", {"pending": pending})


class LoginView(auth_views.LoginView):
    """Django's login (it rotates the session key) with failures throttled per account and per address.

    While a wait is running the attempt is refused (429, ``Retry-After``) without
    looking at the password; the page says how long to wait.
    """

    form_class = EmailAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    @staticmethod
    def _wait_message(wait: int) -> str:
        return (
            f"Too many failed sign-in attempts. Wait {ratelimit.wait_text(wait)} before trying again, "
            "or reset your password."
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        email = request.POST.get("username", "")
        wait = throttle.login_wait(request, email)
        if wait:
            # An unbound form: binding it would check the password.
            form = self.form_class(request, initial={"username": email})
            context = self.get_context_data(form=form, wait_message=self._wait_message(wait))
            return _throttled(self.render_to_response(context), wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        wait = throttle.login_failed(self.request, self.request.POST.get("username", ""))
        if wait:
            return self.render_to_response(self.get_context_data(form=form, wait_message=self._wait_message(wait)))
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        throttle.login_succeeded(email=form.get_user().email)
        return super().form_valid(form)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset form, limited per client address and per target email (it sends email)."""

    def form_valid(self, form: Any) -> HttpResponse:
        wait = throttle.password_reset_wait(self.request, form.cleaned_data["email"])
        if wait:
            form.add_error(
                None,
                f"Too many reset requests for this email or from your network. Wait {ratelimit.wait_text(wait)} "
                "and try again; a link already emailed to you still works.",
            )
            return _throttled(self.render_to_response(self.get_context_data(form=form)), wait)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Choosing a new password from the emailed link also ends the account's sign-in waits."""

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        throttle.login_succeeded(email=form.user.email)
        return response


@login_required
def workspace_new(request: AuthenticatedRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.workspace_create(name=form.cleaned_data["name"], owner=request.user)
        request.session[SESSION_WORKSPACE_KEY] = workspace.pk
        messages.success(request, f"Workspace {workspace.name} created.")
        return redirect("dashboard")
    return render(request, "accounts/workspace_new.html", {"form": form})


@login_required
@require_POST
def workspace_switch(request: AuthenticatedRequest) -> HttpResponse:
    try:
        workspace_id = int(request.POST.get("workspace", ""))
    except ValueError:
        workspace_id = -1
    membership = selectors.memberships_for_user(request.user).filter(workspace_id=workspace_id).first()
    if membership is None:
        return render(request, "error.html", {"status": 404, "message": "Not found."}, status=404)
    request.session[SESSION_WORKSPACE_KEY] = membership.workspace_id
    return redirect("dashboard")


@workspace_required(write="admin")
def settings_workspace(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    form = WorkspaceForm(request.POST or None, initial={"name": workspace.name})
    if request.method == "POST" and form.is_valid():
        services.workspace_rename(workspace=workspace, name=form.cleaned_data["name"], actor=request.user)
        messages.success(request, "Workspace renamed.")
        return redirect("settings_workspace")
    return render(request, "accounts/settings_workspace.html", {"form": form, "tab": "workspace"})


@workspace_required(write="admin")
@require_safe
def settings_members(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    return render(
        request,
        "accounts/settings_members.html",
        {"members": selectors.members_list(workspace), "roles": Role.choices, "tab": "members"},
    )


@workspace_required(write="admin")
@require_POST
def settings_member_role(request: MemberRequest, pk: int) -> HttpResponse:
    """Change a member's role; granting, removing or changing the owner role asks for the owner's password."""
    workspace = request.workspace
    membership = get_object_or_404(selectors.members_list(workspace), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("settings_members")
    try:
        services.membership_change_role(
            workspace=workspace,
            membership=membership,
            role=form.cleaned_data["role"],
            actor=request.user,
            actor_role=request.membership.role,
            password=form.cleaned_data["password"],
        )
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("settings_members")


@workspace_required(write="admin")
@require_POST
def settings_member_remove(request: MemberRequest, pk: int) -> HttpResponse:
    """Remove a member and revoke the API keys they created; removing an owner asks for the owner's password."""
    workspace = request.workspace
    membership = get_object_or_404(selectors.members_list(workspace), pk=pk)
    form = PasswordConfirmForm(request.POST)
    form.is_valid()
    try:
        revoked = services.membership_remove(
            workspace=workspace,
            membership=membership,
            actor=request.user,
            actor_role=request.membership.role,
            password=form.cleaned_data.get("password"),
        )
        keys = f"{revoked} API key{'' if revoked == 1 else 's'} they created {'was' if revoked == 1 else 'were'}"
        messages.success(request, f"Removed {membership.user.email}; {keys} revoked.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("settings_members")


@workspace_required(write="admin")
def settings_invitations(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    path = reverse("settings_invitations")
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, link = services.invitation_create(
                workspace=workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.user,
                accept_url_base=request.build_absolute_uri("/"),
                actor_role=request.membership.role,
                password=form.cleaned_data["password"],
            )
            return reveal.reveal_on_next_page(redirect(path), path=path, secret=link)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
    created_link = reveal.take_revealed(request, path=path) if request.method == "GET" else None
    response = render(
        request,
        "accounts/settings_invitations.html",
        {
            "form": form,
            "created_link": created_link,
            "invitations": selectors.invitations_pending(workspace),
            "email_configured": settings.EMAIL_CONFIGURED,
            "tab": "invitations",
        },
    )
    return reveal.forget_revealed(response, path=path) if created_link else response


@workspace_required(write="admin")
@require_POST
def settings_invitation_revoke(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    invitation = get_object_or_404(Invitation.objects.filter(workspace=workspace), pk=pk)
    services.invitation_revoke(workspace=workspace, invitation=invitation, actor=request.user)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("settings_invitations")


@workspace_required(write="admin")
def settings_api_keys(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    path = reverse("settings_api_keys")
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = services.api_key_create(workspace=workspace, name=form.cleaned_data["name"], actor=request.user)
        except ValidationError as error:
            form.add_error("name", error.message_dict["name"])
        else:
            return reveal.reveal_on_next_page(redirect(path), path=path, secret=secret)
    created_secret = reveal.take_revealed(request, path=path) if request.method == "GET" else None
    response = render(
        request,
        "accounts/settings_api_keys.html",
        {"form": form, "created_secret": created_secret, "keys": selectors.api_keys_list(workspace), "tab": "api_keys"},
    )
    return reveal.forget_revealed(response, path=path) if created_secret else response


@workspace_required(write="admin")
@require_POST
def settings_api_key_revoke(request: MemberRequest, pk: int) -> HttpResponse:
    workspace = request.workspace
    key = get_object_or_404(ApiKey.objects.filter(workspace=workspace), pk=pk)
    services.api_key_revoke(workspace=workspace, key=key, actor=request.user)
    messages.success(request, f"Key “{key.name}” revoked. Requests using it now get 401.")
    return redirect("settings_api_keys")


@workspace_required(write="admin")
def settings_write_key(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    if request.method == "POST":
        services.write_key_rotate(workspace=workspace, actor=request.user)
        messages.success(request, "Write key rotated. Update your snippet and SDKs: the old key no longer works.")
        return redirect("settings_write_key")
    # The origin events are sent to: the one this page was reached at.
    host = request.build_absolute_uri("/").rstrip("/")
    return render(request, "accounts/settings_write_key.html", {"tab": "write_key", "host": host})


@workspace_required()
@require_safe
def settings_audit_log(request: MemberRequest) -> HttpResponse:
    workspace = request.workspace
    page = Paginator(selectors.audit_log(workspace), 50).get_page(request.GET.get("page"))
    return render(request, "accounts/settings_audit_log.html", {"page": page, "tab": "audit_log"})


def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation link: join as the signed-in user, or sign up to join."""
    invitation = selectors.invitation_by_token(token)
    if invitation is None:
        return render(
            request,
            "error.html",
            {"status": 404, "message": "This invitation link is invalid, expired, used or revoked."},
            status=404,
        )
    context: dict[str, Any] = {"invitation": invitation}
    if request.user.is_authenticated:
        if request.method == "POST":
            membership = services.invitation_accept(invitation=invitation, user=request.user)
            request.session[SESSION_WORKSPACE_KEY] = membership.workspace_id
            messages.success(request, f"You joined {invitation.workspace.name}.")
            return redirect("dashboard")
        return render(request, "accounts/invite_accept.html", context)

    existing = User.objects.filter(email__iexact=invitation.email).exists()
    form = JoinForm(request.POST or None, email=invitation.email)
    if not existing and request.method == "POST" and form.is_valid():
        user = User.objects.create_user(
            email=invitation.email, password=form.cleaned_data["password"], name=form.cleaned_data["name"]
        )
        membership = services.invitation_accept(invitation=invitation, user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_WORKSPACE_KEY] = membership.workspace_id
        messages.success(request, f"Welcome to {invitation.workspace.name}.")
        return redirect("dashboard")
    context.update(form=form, existing=existing, login_url=f"{reverse('login')}?next={request.path}")
    return render(request, "accounts/invite_accept.html", context)
