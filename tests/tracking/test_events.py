"""tracking.events: the port's registry (subscribers come from settings, by hook name)."""

from __future__ import annotations

import pytest

from accounts.tenancy import workspace_scope
from tests.tracking import builders
from tracking import events
from tracking.exports import OWN_SECTIONS


@pytest.fixture
def _subscribers(settings):
    """The hooks of the settings again after the test, whatever it loaded."""
    yield
    events.subscribers_load(settings.TRACKING_SUBSCRIBERS)


def test_the_settings_subscribers_are_registered_by_hook_name(settings):
    assert settings.TRACKING_SUBSCRIBERS == [
        "segmentation.people",
        "segmentation.catalogue.people",
        "insights.clustering_people",
        "insights.people",
        "campaigns.people",
        "campaigns.trigger_people",
    ]
    registered = {
        name: [f"{hook.__module__}.{hook.__name__}" for hook in hooks] for name, hooks in events._hooks.items()
    }
    assert registered == {
        "people_touched": ["segmentation.people.people_touched", "campaigns.trigger_people.people_touched"],
        "people_imported": ["segmentation.people.people_imported", "segmentation.catalogue.people.people_imported"],
        "traits_recomputed": ["segmentation.people.traits_recomputed"],
        "person_merged": [
            "segmentation.people.person_merged",
            "insights.clustering_people.person_merged",
            "campaigns.people.person_merged",
        ],
        "person_erased": [
            "segmentation.people.person_erased",
            "segmentation.catalogue.people.person_erased",
            "insights.clustering_people.person_erased",
            "insights.people.person_erased",
            "campaigns.people.person_erased",
        ],
        "person_export": [
            "segmentation.people.person_export",
            "insights.clustering_people.person_export",
            "campaigns.people.person_export",
        ],
    }


@pytest.mark.usefixtures("_subscribers")
def test_a_subscriber_module_without_any_hook_is_refused_and_nothing_changes():
    before = {name: list(hooks) for name, hooks in events._hooks.items()}
    with pytest.raises(ValueError, match=r"TRACKING_SUBSCRIBERS: tracking\.models defines none of people_touched"):
        events.subscribers_load(["segmentation.people", "tracking.models"])
    assert events._hooks == before


@pytest.mark.usefixtures("_subscribers")
def test_no_subscriber_no_work_out_of_the_changes():
    events.subscribers_load([])
    assert not events.people_touched_wanted()
    assert events.person_erased(events.ErasedPerson(workspace=None, person_id=1, identities=[])) == {}  # type: ignore[arg-type]


def test_an_export_section_may_not_take_a_name_of_tracking(workspace):
    person = builders.person(workspace, user_id="ada")
    with workspace_scope(workspace), pytest.raises(ValueError, match="'memberships' is given twice"):
        events.person_export(workspace, person, reserved=[*OWN_SECTIONS, "memberships"])
