"""The person index of events carries the event name.

Segment conditions that look up one person's events of one name in a time
range (each later step of a ``sequence``, for every occurrence of step 1) read
the name from the index instead of fetching every event of the person in that
range from the table: an index-only probe. The key stays
``(workspace_id, person_id, "timestamp")``, so a person's history reads the
index as before; no index is added to the ingestion path, one is widened.
"""

from django.db import migrations

FORWARD = r"""
CREATE INDEX tracking_event_person_name_idx ON tracking_event (workspace_id, person_id, "timestamp") INCLUDE (name);
DROP INDEX tracking_event_person_idx;
ALTER INDEX tracking_event_person_name_idx RENAME TO tracking_event_person_idx;
"""

BACKWARD = r"""
CREATE INDEX tracking_event_person_plain_idx ON tracking_event (workspace_id, person_id, "timestamp");
DROP INDEX tracking_event_person_idx;
ALTER INDEX tracking_event_person_plain_idx RENAME TO tracking_event_person_idx;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0005_processed_message_brin"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
