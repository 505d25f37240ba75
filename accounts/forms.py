from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts.models import API_KEY_NAME_MAX_LENGTH, Role, User
from accounts.services import workspace_name_clean
from core.names import name_clean


def _field_errors(error: ValidationError, field: str = "name") -> forms.ValidationError:
    """A service's ``{field: [messages]}`` refusal as the errors of one form field."""
    return forms.ValidationError(error.message_dict[field])


def _person_name(value: str) -> str:
    """A person's display name in its normal form (``core.names``); it may be empty."""
    try:
        return name_clean(value, noun="A person", max_length=100, required=False)
    except ValidationError as error:
        raise _field_errors(error) from error


def _workspace_name(value: str) -> str:
    try:
        return workspace_name_clean(value)
    except ValidationError as error:
        raise _field_errors(error) from error


class SignupForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Your name")
    email = forms.EmailField(max_length=254, label="Work email")
    password = forms.CharField(widget=forms.PasswordInput, label="Password", strip=False)
    workspace_name = forms.CharField(max_length=100, label="Workspace name")

    def clean_name(self) -> str:
        return _person_name(self.cleaned_data["name"])

    def clean_workspace_name(self) -> str:
        return _workspace_name(self.cleaned_data["workspace_name"])

    def clean_email(self) -> str:
        # Whether the email has an account is not the form's to tell (accounts.signup).
        email: str = self.cleaned_data["email"].strip().lower()
        return email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("password")
        if password:
            try:
                password_validation.validate_password(password, User(email=cleaned.get("email", "")))
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class JoinForm(forms.Form):
    """Sign-up through an invitation: the workspace is the invitation's."""

    name = forms.CharField(max_length=100, required=False, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput, label="Choose a password", strip=False)

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_name(self) -> str:
        return _person_name(self.cleaned_data["name"])

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        password_validation.validate_password(password, User(email=self.email))
        return password


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean_username(self) -> str:
        # Emails are stored lower-cased (UserManager.create_user); match however they are typed.
        username: str = self.cleaned_data["username"]
        return username.strip().lower()


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100, label="Workspace name")

    def clean_name(self) -> str:
        return _workspace_name(self.cleaned_data["name"])


class ApiKeyForm(forms.Form):
    """The name as typed: its normal form, and whether an active key has it already, are the service's."""

    name = forms.CharField(
        max_length=API_KEY_NAME_MAX_LENGTH, label="Key name", help_text="What uses this key, e.g. “CRM sync”."
    )


def _owner_password(help_text: str) -> forms.CharField:
    return forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
        strip=False,
        max_length=4096,
        label="Your password",
        help_text=help_text,
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254, label="Email")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")
    password = _owner_password("Only to invite an owner.")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label="Role")
    password = _owner_password("Needed to grant, remove or change the owner role.")


class PasswordConfirmForm(forms.Form):
    password = _owner_password("Needed to remove an owner.")
