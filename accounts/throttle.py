"""Throttles of the public account forms: sign-in, password reset, sign-up.

Sign-in failures are counted per account (the email typed, whether or not it
has an account) and per client address, separately. A few failures cost
nothing; then each failure makes the next attempt wait twice as long as the
last (1 s, 2 s, 4 s, ... at most ``LOGIN_BACKOFF_MAX_SECONDS``). An attempt
made while waiting is refused without looking at the password and is not a
failure, so the owner of an account under attack waits at most the cap, and a
successful sign-in (or a password reset) clears the account's count.

Password reset and sign-up send email, so they are limited per client address
and per target email in fixed windows (``core.ratelimit``); the count does
not depend on whether the email has an account, so a refusal tells nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from core import ratelimit
from core.client_address import client_address, throttle_subject


def _email(email: str) -> str:
    return email.strip().lower()


def _address(request: HttpRequest) -> str:
    return throttle_subject(client_address(request))


def _account_key(email: str) -> str:
    return ratelimit.key("login", "account", _email(email))


def _address_key(request: HttpRequest) -> str:
    return ratelimit.key("login", "address", _address(request))


def login_wait(request: HttpRequest, email: str) -> int:
    """Seconds before this email may be tried again from this address (0: now)."""
    return ratelimit.failure_wait([_account_key(email), _address_key(request)])


def login_failed(request: HttpRequest, email: str) -> int:
    """Count a failed sign-in; answers the seconds the next attempt must wait (0: none)."""
    return ratelimit.failure_record(
        [
            (_account_key(email), settings.LOGIN_FAILURE_LIMIT),
            (_address_key(request), settings.LOGIN_ADDRESS_FAILURE_LIMIT),
        ],
        base=settings.LOGIN_BACKOFF_FIRST_SECONDS,
        cap=settings.LOGIN_BACKOFF_MAX_SECONDS,
        keep=settings.LOGIN_FAILURE_WINDOW_SECONDS,
    )


def login_succeeded(*, email: str) -> None:
    """The account's owner is in (signed in, or chose a new password by a reset link): forget its failures."""
    ratelimit.forget([_account_key(email)])


def password_confirm_wait(*, email: str) -> int:
    """Seconds before ``email``'s owner may type their password again to confirm a change (0: now).

    The account's sign-in failures and these share one count: a stolen session must not
    guess the password faster than the sign-in form allows.
    """
    return ratelimit.failure_wait([_account_key(email)])


def password_confirm_failed(*, email: str) -> int:
    """Count a wrong confirmation password as a sign-in failure of the account; the wait it starts."""
    return ratelimit.failure_record(
        [(_account_key(email), settings.LOGIN_FAILURE_LIMIT)],
        base=settings.LOGIN_BACKOFF_FIRST_SECONDS,
        cap=settings.LOGIN_BACKOFF_MAX_SECONDS,
        keep=settings.LOGIN_FAILURE_WINDOW_SECONDS,
    )


def password_reset_wait(request: HttpRequest, email: str) -> int:
    """Count a reset request; 0 when it may send, else the seconds to wait (nothing counted)."""
    return ratelimit.take(
        [
            ratelimit.Limit(
                ratelimit.key("reset", "address", _address(request)),
                ratelimit.rate(settings.PASSWORD_RESET_ADDRESS_RATE),
            ),
            ratelimit.Limit(
                ratelimit.key("reset", "email", _email(email)), ratelimit.rate(settings.PASSWORD_RESET_EMAIL_RATE)
            ),
        ]
    )


def signup_wait(request: HttpRequest, email: str) -> int:
    """Count a sign-up (it sends an email either way); 0 when it may, else the seconds to wait."""
    return ratelimit.take(
        [
            ratelimit.Limit(
                ratelimit.key("signup", "address", _address(request)), ratelimit.rate(settings.SIGNUP_ADDRESS_RATE)
            ),
            ratelimit.Limit(
                ratelimit.key("signup", "email", _email(email)), ratelimit.rate(settings.SIGNUP_EMAIL_RATE)
            ),
        ]
    )
