"""Webhook secrets, signatures and the retry schedule. No I/O.

A receiver verifies ``Cohortly-Signature: t=<unix>,v1=<hex>`` by computing
HMAC-SHA256 over ``f"{t}.{body}"`` with the subscription's secret, comparing in
constant time, and refusing timestamps too far from its clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.utils.crypto import salted_hmac

SECRET_PREFIX = "whsec_"
HINT_LENGTH = len(SECRET_PREFIX) + 4
SIGNATURE_HEADER = "Cohortly-Signature"
DELIVERY_HEADER = "Cohortly-Delivery"
EVENT_HEADER = "Cohortly-Event"
# Seconds to wait after failed attempt n (1-based); after the last, the delivery fails.
RETRY_SCHEDULE = (60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1


def new_secret_salt() -> str:
    return secrets.token_hex(32)


def subscription_secret(salt: str) -> str:
    """The signing secret of a subscription: derived from its salt and ``SECRET_KEY``.

    Changing ``SECRET_KEY`` changes every webhook secret; rotate each one afterwards.
    """
    digest = salted_hmac("cohortly.webhooks.secret", salt, algorithm="sha256").digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def retry_delay(attempts: int) -> int | None:
    """Seconds before the next attempt after ``attempts`` failed ones; ``None``: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_SCHEDULE[attempts - 1]
