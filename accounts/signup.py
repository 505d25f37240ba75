"""Sign-up confirmed by email: nothing is created until the address's owner follows a link.

The form answers every valid sign-up the same way, a redirect to "Check your
inbox", whether or not the email already has an account, so that the form
cannot be used to find out who has one. What differs is only in that inbox:

- a new email gets a link; the account and its workspace are created, and the
  person signed in, when they confirm from it;
- an email that has an account gets a notice that someone tried to sign up with
  it, with links to sign in and to reset the password.

Both branches hash the password and send one email, so they also take about
as long. The pending sign-up (email, name, password hash, workspace name) waits
in Redis under the hash of its link's token for ``SIGNUP_LINK_TTL_SECONDS``;
the token itself is only in the email.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from accounts import services
from accounts.models import User, Workspace

logger = logging.getLogger(__name__)

ACCOUNT_EXISTS = "An account with this email exists already. Sign in instead."


@dataclass(frozen=True)
class PendingSignup:
    email: str
    name: str
    password_hash: str
    workspace_name: str


def _cache_key(token: str) -> str:
    return f"signup-pending:{hashlib.sha256(token.encode()).hexdigest()}"


def _send(*, subject: str, body: str, email: str) -> None:
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[email])
    except (OSError, smtplib.SMTPException):
        # The answer must not depend on the mail server either; the person can sign up again.
        logger.warning("sign-up: could not send the email", exc_info=True)


def signup_request(*, email: str, password: str, name: str, workspace_name: str, site_url: str) -> None:
    """Email a confirmation link (new email) or a notice (email with an account); nothing else is written."""
    email = email.strip().lower()
    password_hash = make_password(password)
    site = site_url.rstrip("/")
    if User.objects.filter(email__iexact=email).exists():
        _send(
            subject="Someone tried to sign up to Cohortly with your email",
            body=(
                "Someone, maybe you, tried to create a Cohortly account with this email address, "
                "which already has one. Nothing was changed.\n\n"
                f"If it was you, sign in: {site}/login/\n"
                f"Forgot your password? Reset it: {site}/password-reset/\n\n"
                "If it was not you, you can ignore this email.\n"
            ),
            email=email,
        )
        return
    token = secrets.token_urlsafe(32)
    pending = PendingSignup(email=email, name=name, password_hash=password_hash, workspace_name=workspace_name)
    cache.set(_cache_key(token), pending, timeout=settings.SIGNUP_LINK_TTL_SECONDS)
    hours = settings.SIGNUP_LINK_TTL_SECONDS // 3600
    _send(
        subject="Confirm your email to finish signing up to Cohortly",
        body=(
            "Follow this link to confirm your email address and create your Cohortly workspace:\n\n"
            f"{site}/signup/confirm/{token}/\n\n"
            f"The link works for {hours} hours. If you did not sign up, you can ignore this email.\n"
        ),
        email=email,
    )


def signup_pending(token: str) -> PendingSignup | None:
    """The sign-up waiting behind this link, if it is still valid."""
    pending = cache.get(_cache_key(token))
    return pending if isinstance(pending, PendingSignup) else None


def signup_confirm(*, token: str) -> tuple[User, Workspace] | None:
    """Create the account and workspace of this link, once; None when the link is unknown, expired or used.

    Raises ValidationError when the email got an account meanwhile (an earlier link of the same email).
    """
    pending = signup_pending(token)
    # Deleting is the claim: of two concurrent confirmations, one deletes the key.
    if pending is None or not cache.delete(_cache_key(token)):
        return None
    try:
        with transaction.atomic():
            user = User.objects.create(email=pending.email, name=pending.name, password=pending.password_hash)
            workspace = services.workspace_create(name=pending.workspace_name, owner=user)
    except IntegrityError as error:
        raise ValidationError(ACCOUNT_EXISTS) from error
    return user, workspace
