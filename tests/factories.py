"""factory_boy factories; each tenant-owned factory takes its workspace."""

from __future__ import annotations

import itertools

import factory

from accounts import services
from accounts.models import ApiKey, Membership, User, Workspace
from accounts.tenancy import workspace_scope

PASSWORD = "a-long-test-password-42"


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def member(workspace: Workspace, *, role: str = "member", user: User | None = None) -> User:
    """A user with ``role`` in ``workspace``."""
    user = user or UserFactory()
    with workspace_scope(workspace):
        Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


_key_numbers = itertools.count(1)


def api_key(workspace: Workspace, *, name: str | None = None, creator: User | None = None) -> tuple[ApiKey, str]:
    """A key of ``workspace`` and its secret, made by ``creator`` (default: the workspace's first owner,
    made for the occasion if it has none). A key acts with its creator's role. The default name is
    a new one each time: active keys of a workspace have different names."""
    name = name if name is not None else f"test key {next(_key_numbers)}"
    with workspace_scope(workspace):
        if creator is None:
            first_owner = Membership.objects.filter(role="owner").order_by("pk").select_related("user").first()
            creator = first_owner.user if first_owner else None
    if creator is None:
        creator = member(workspace, role="owner")
    with workspace_scope(workspace):
        return services.api_key_create(workspace=workspace, name=name, actor=creator)
