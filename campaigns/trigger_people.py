"""Event triggers' subscriber to tracking's port (``tracking.events``; listed in ``TRACKING_SUBSCRIBERS``).

- ``people_touched``: on ingestion's hot path. Only when some listening campaign of the
  workspace triggers on a name among the people's new events (a per-process list, read
  again every few seconds: ``campaigns.triggers.trigger_events_listened``) does it write,
  in ingestion's transaction, one ``TriggerInbox`` row per person and name (one statement),
  and queue the inbox's drain on commit. Otherwise it costs a dictionary lookup.
Merges and erasures of inbox rows are ``campaigns.people``'s, with the app's other tables.
No ``people_imported``: a bulk import is history, and history triggers no campaign
(docs/campaigns.md, "Triggered campaigns").
"""

from __future__ import annotations

from collections.abc import Mapping

from accounts.tenancy import workspace_scope
from campaigns.triggers import trigger_events_listened, trigger_inbox_note
from tracking.events import Change


def people_touched(workspace_id: int, changes: Mapping[int, Change]) -> None:
    # Ingestion calls the port outside its workspace scope; the write key named the workspace.
    with workspace_scope(workspace_id):
        listened = trigger_events_listened(workspace_id)
        if not listened:
            return
        people: list[int] = []
        names: list[str] = []
        for person_id, change in changes.items():
            for name in change.events & listened:
                people.append(person_id)
                names.append(name)
        if people:
            trigger_inbox_note(workspace_id=workspace_id, people=people, event_names=names)
