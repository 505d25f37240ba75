"""Each person's first and last event time, kept by the events table's triggers.

``first_performed`` / ``last_performed`` of ``$any`` ("new this week", "last
seen doing anything 30 days ago") then read one column of the people instead
of grouping every event of the workspace by person. Statement-level triggers
with transition tables, so that every writer (ingestion's INSERT and COPY,
merges re-pointing events, erasure deleting them, imports, tests) keeps the
columns right, at one UPDATE of the people per statement (two for an update):

- insert: each person's earliest and latest new event widen the columns;
- update (a merge moves events to its survivor): the people the events left are
  recomputed from their events (two probes of the person index each), those
  they went to widened as by an insert;
- delete: the people whose events went are recomputed.
"""

from django.db import migrations, models

FORWARD = r"""
CREATE FUNCTION tracking_event_times_widen() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Ingestion keeps the columns in its own update of the people (tracking.ingest).
    IF current_setting('cohortly.event_times_kept', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE tracking_person p
    SET first_event_at = LEAST(p.first_event_at, n.first_at), last_event_at = GREATEST(p.last_event_at, n.last_at)
    FROM (
        SELECT workspace_id, person_id, min("timestamp") AS first_at, max("timestamp") AS last_at
        FROM tracking_event_new GROUP BY workspace_id, person_id ORDER BY person_id
    ) n
    WHERE p.workspace_id = n.workspace_id AND p.id = n.person_id
      AND (p.first_event_at IS NULL OR p.first_event_at > n.first_at
           OR p.last_event_at IS NULL OR p.last_event_at < n.last_at);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION tracking_event_times_recompute() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Ingestion keeps the columns in its own update of the people (tracking.ingest).
    IF current_setting('cohortly.event_times_kept', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE tracking_person p
    SET first_event_at = (SELECT min(e."timestamp") FROM tracking_event e
                          WHERE e.workspace_id = p.workspace_id AND e.person_id = p.id),
        last_event_at = (SELECT max(e."timestamp") FROM tracking_event e
                         WHERE e.workspace_id = p.workspace_id AND e.person_id = p.id)
    FROM (SELECT DISTINCT workspace_id, person_id FROM tracking_event_old ORDER BY person_id) c
    WHERE p.workspace_id = c.workspace_id AND p.id = c.person_id;
    RETURN NULL;
END
$fn$;

-- An update (a merge moving events to its survivor) recomputes the people its events left
-- and widens those they went to; in either order the result is exact.
CREATE TRIGGER tracking_event_times_insert AFTER INSERT ON tracking_event
    REFERENCING NEW TABLE AS tracking_event_new
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_times_widen();
CREATE TRIGGER tracking_event_times_update_from AFTER UPDATE ON tracking_event
    REFERENCING OLD TABLE AS tracking_event_old
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_times_recompute();
CREATE TRIGGER tracking_event_times_update_to AFTER UPDATE ON tracking_event
    REFERENCING NEW TABLE AS tracking_event_new
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_times_widen();
CREATE TRIGGER tracking_event_times_delete AFTER DELETE ON tracking_event
    REFERENCING OLD TABLE AS tracking_event_old
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_times_recompute();

UPDATE tracking_person p SET first_event_at = t.first_at, last_event_at = t.last_at
FROM (SELECT workspace_id, person_id, min("timestamp") AS first_at, max("timestamp") AS last_at
      FROM tracking_event GROUP BY workspace_id, person_id) t
WHERE p.workspace_id = t.workspace_id AND p.id = t.person_id;
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS tracking_event_times_insert ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_times_update_from ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_times_update_to ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_times_delete ON tracking_event;
DROP FUNCTION IF EXISTS tracking_event_times_widen();
DROP FUNCTION IF EXISTS tracking_event_times_recompute();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0007_hot_table_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="first_event_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="person",
            name="last_event_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
