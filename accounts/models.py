from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from accounts.keys import new_write_key
from accounts.tenancy import TenantModel

WORKSPACE_NAME_MAX_LENGTH = 100
API_KEY_NAME_MAX_LENGTH = 100
API_KEY_NAME_CONSTRAINT = "api_key_active_name_ci_unique"


class Workspace(models.Model):
    """The tenant. Global by nature: every tenant-owned row points here."""

    name = models.CharField(max_length=WORKSPACE_NAME_MAX_LENGTH)
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save()
        return user


class User(AbstractBaseUser):
    """A person who signs in. Global: one login, many workspaces through Membership."""

    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Roles that may manage members, invitations and keys.
ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})
# Roles that may change anything at all; viewers only read.
WRITER_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})


class Membership(TenantModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")]

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES

    @property
    def can_admin(self) -> bool:
        return self.role in ADMIN_ROLES


class Invitation(TenantModel):
    """An invitation by link; the token is shown once and stored as a hash."""

    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "created_at"])]


class ApiKey(TenantModel):
    """A secret REST API key. Only its SHA-256 and a short display prefix are kept."""

    name = models.CharField(max_length=API_KEY_NAME_MAX_LENGTH)
    display_prefix = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "created_at"])]
        constraints = [
            # Names are stored in their normal form (core.names); among active keys, the same name in
            # another case is taken. A revoked key keeps its name and frees it.
            models.UniqueConstraint(
                F("workspace"), Lower("name"), condition=Q(revoked_at__isnull=True), name=API_KEY_NAME_CONSTRAINT
            ),
        ]

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditLogEntry(TenantModel):
    """An administrative action: who did what to whom, when. Append-only."""

    actor = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254, help_text="who acted, kept if the user is deleted")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"])]
        ordering = ["-created_at", "-id"]
