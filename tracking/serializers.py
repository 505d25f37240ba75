"""The REST shape of a person, for tracking's endpoints and for the endpoints of apps above that list people."""

from __future__ import annotations

from rest_framework import serializers

from tracking import people_selectors as selectors
from tracking.models import Person


class PersonSerializer(serializers.ModelSerializer[Person]):
    user_id = serializers.CharField(read_only=True, allow_null=True, help_text="Null when the person is anonymous.")
    anonymous_ids = serializers.SerializerMethodField()
    user_ids = serializers.SerializerMethodField(help_text="Every user id the person is known by (aliases too).")

    class Meta:
        model = Person
        fields = ["id", "user_id", "anonymous_ids", "user_ids", "traits", "first_seen", "last_seen"]
        read_only_fields = fields

    def get_anonymous_ids(self, person: Person) -> list[str]:
        return selectors.anonymous_ids(person)

    def get_user_ids(self, person: Person) -> list[str]:
        return selectors.user_ids(person)
