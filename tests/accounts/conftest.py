from __future__ import annotations

import pytest

from tests.accounts.support import smtp_sink


@pytest.fixture
def smtp(settings):
    """An SMTP sink started for the test, with Django's mail settings pointing at it."""
    with smtp_sink() as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        yield sink


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hashing strength is Django's concern, not these tests'; keep each sign-up cheap."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
