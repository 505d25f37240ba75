"""core.api: the one error shape, strict serializers, pagination."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers
from rest_framework.test import APIRequestFactory

from core.api import StrictSerializer, exception_handler


class _Item(serializers.Serializer):
    name = serializers.CharField()
    quantity = serializers.IntegerField()


class _Order(StrictSerializer):
    reference = serializers.CharField(max_length=10)
    channel = serializers.ChoiceField(choices=["email", "webhook"])
    items = _Item(many=True)


def _handle(exc: Exception):
    request = APIRequestFactory().get("/api/v1/anything/")
    return exception_handler(exc, {"request": request, "view": None})


def test_nested_errors_are_flattened_to_paths():
    order = _Order(data={"reference": "ok", "channel": "email", "items": [{"name": "a", "quantity": 1}, {"name": "b"}]})
    assert not order.is_valid()

    response = _handle(serializers.ValidationError(order.errors))

    assert response.status_code == 400
    assert response.data == {
        "detail": "Invalid input. items[1].quantity: This field is required.",
        "code": "invalid",
        "errors": {"items[1].quantity": ["This field is required."]},
    }


def test_strict_serializer_refuses_unknown_fields_and_non_strings():
    order = _Order(data={"reference": 12345, "channel": 1, "items": [], "coupon": "FREE"})

    assert not order.is_valid()
    assert order.errors == {
        "coupon": ["Unknown field."],
        "reference": ["Expected a string, got int."],
        "channel": ["Expected a string, got int."],
    }


def test_strict_serializer_refuses_booleans_for_numbers():
    class _Weight(StrictSerializer):
        weight = serializers.FloatField(required=False)
        count = serializers.IntegerField(required=False)

    weight = _Weight(data={"weight": False, "count": True})

    assert not weight.is_valid()
    assert weight.errors == {
        "weight": ["Expected a number, got a boolean."],
        "count": ["Expected a number, got a boolean."],
    }
    assert _Weight(data={"weight": 0, "count": 1}).is_valid()


def test_strict_serializer_accepts_good_input():
    order = _Order(data={"reference": "R1", "channel": "webhook", "items": [{"name": "a", "quantity": 2}]})

    assert order.is_valid(), order.errors
    assert order.validated_data["reference"] == "R1"


def test_django_validation_errors_become_400s_naming_the_field():
    response = _handle(DjangoValidationError({"email": "Already a member."}))

    assert response.status_code == 400
    assert response.data["errors"] == {"email": ["Already a member."]}
    assert response.data["detail"] == "Invalid input. email: Already a member."


def test_django_validation_error_without_field():
    response = _handle(DjangoValidationError("A workspace needs at least one owner."))

    assert response.status_code == 400
    assert response.data["detail"] == "Invalid input. A workspace needs at least one owner."


def test_django_permission_denied_becomes_a_403_with_its_message():
    response = _handle(DjangoPermissionDenied("Only an owner can remove an owner."))

    assert response.status_code == 403
    assert response.data == {"detail": "Only an owner can remove an owner.", "code": "permission_denied"}


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (exceptions.NotAuthenticated(), 401, "not_authenticated"),
        (exceptions.NotFound(), 404, "not_found"),
        (exceptions.Throttled(wait=3), 429, "throttled"),
        (exceptions.ParseError("JSON parse error - x"), 400, "parse_error"),
    ],
)
def test_api_exceptions_keep_the_shape(exc, status, code):
    response = _handle(exc)

    assert response.status_code == status
    assert response.data["code"] == code
    assert isinstance(response.data["detail"], str)
    assert response.data["detail"]


def test_unexpected_exceptions_are_left_to_the_500_handler():
    assert _handle(RuntimeError("boom")) is None


def test_list_field_errors_are_indexed_paths():
    class _Tags(StrictSerializer):
        tags = serializers.ListField(child=serializers.IntegerField())

    tags = _Tags(data={"tags": [1, "x", 3, "y"]})
    assert not tags.is_valid()

    response = _handle(serializers.ValidationError(tags.errors))

    assert response.data["errors"] == {
        "tags[1]": ["A valid integer is required."],
        "tags[3]": ["A valid integer is required."],
    }


# --- pagination ----------------------------------------------------------------------------------


@pytest.fixture
def keyed(workspace):
    """A client with a secret key of ``workspace``, and that workspace with three more keys."""
    from django.test import Client

    from tests import factories

    for index in range(3):
        factories.api_key(workspace, name=f"key {index}")
    _, secret = factories.api_key(workspace)
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("page_size=0", "page_size", "A whole number from 1 to 500, not '0'."),
        ("page_size=501", "page_size", "At most 500, not 501."),
        ("page_size=null", "page_size", "A whole number from 1 to 500, not 'null'."),
        ("page_size=", "page_size", "A whole number from 1 to 500, not ''."),
        ("page_size=-1", "page_size", "A whole number from 1 to 500, not '-1'."),
        ("page_size=%D9%A3", "page_size", "A whole number from 1 to 500, not '\u0663'."),
        ("page=0", "page", "A whole number from 1, not '0'."),
        ("page=abc", "page", "A whole number from 1, not 'abc'."),
        ("page=last", "page", "A whole number from 1, not 'last'."),
    ],
)
def test_page_and_page_size_out_of_range_are_a_400_naming_them(keyed, query, field, message):
    response = keyed.get(f"/api/v1/api-keys/?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == {field: [message]}


def test_page_size_at_the_bounds_is_served(keyed):
    one = keyed.get("/api/v1/api-keys/?page_size=1&page=2")
    most = keyed.get("/api/v1/api-keys/?page_size=500")

    assert one.status_code == 200
    assert len(one.json()["results"]) == 1
    assert one.json()["count"] == 4
    assert most.status_code == 200
    assert len(most.json()["results"]) == 4


def test_a_cursor_that_was_not_handed_out_is_a_400_naming_it(keyed):
    response = keyed.get("/api/v1/events/?cursor=bz14")  # "o=x"
    zero = keyed.get("/api/v1/events/?page_size=0")

    assert response.status_code == 400
    assert response.json()["errors"] == {"cursor": ["Not a cursor of this list: use the next or previous link."]}
    assert zero.status_code == 400
    assert zero.json()["errors"] == {"page_size": ["A whole number from 1 to 500, not '0'."]}
