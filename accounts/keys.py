"""Key material: secret API keys, public write keys, invitation tokens.

Secret keys and invitation tokens are random and long, so a plain SHA-256 is
a sound storage hash (GitHub and Stripe do the same); only the hash is kept.
"""

from __future__ import annotations

import hashlib
import secrets

SECRET_KEY_PREFIX = "cly_sk_"
WRITE_KEY_PREFIX = "cly_wk_"
# Characters of a secret key kept in clear for display, prefix included.
DISPLAY_LENGTH = len(SECRET_KEY_PREFIX) + 6


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(30)


def new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(18)


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)
