"""Each person's first event time per event name (``PersonEventFirst``), kept by the events' triggers.

As migration 0008 keeps ``first_event_at``, statement-level triggers with transition tables keep
the rows right for every writer of events (ingestion, imports, merges, erasures, tests):

- insert: each (person, name)'s earliest new event adds the row or lowers it. The pairs whose row is
  already as early are dropped first by a probe of the unique index, so that a steady stream of
  later events locks and writes nothing (``ON CONFLICT DO UPDATE`` would lock each row it meets);
- update (a merge moves events to its survivor): the pairs the events left are recomputed from the
  events (a row without events left is deleted), those they went to lowered as by an insert;
- delete: the pairs whose events went are recomputed.

PL/pgSQL keeps the plan it made first, in each connection, until the table's statistics change:
a plan made while the table was small stays in use as it grows. So the table has one index, the
unique one, which serves every probe by its three keys (and ``first_at`` from the index), and both
functions run with ``enable_seqscan = off`` (for their own statements only). With a sequential
scan per pair kept, or with a second index by (name, first time) taken for the probe, ingestion
fell from 9,000 to 1,100 events/s in bench/ingest.py on a server without autovacuum.

The rows of existing events are filled at the end (one grouping of the events).
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = r"""
CREATE FUNCTION tracking_event_firsts_lower() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    INSERT INTO tracking_personeventfirst AS f (workspace_id, person_id, name, first_at)
    SELECT n.workspace_id, n.person_id, n.name, n.first_at
    FROM (
        SELECT workspace_id, person_id, name, min("timestamp") AS first_at
        FROM tracking_event_new GROUP BY workspace_id, person_id, name
    ) n
    -- A scalar subquery: one probe of the unique index per pair, whatever the planner would
    -- make of a join (a hash of the whole table for a few hundred new events).
    WHERE n.first_at < coalesce((
        SELECT o.first_at FROM tracking_personeventfirst o
        WHERE o.workspace_id = n.workspace_id AND o.person_id = n.person_id AND o.name = n.name
    ), 'infinity')
    ORDER BY n.person_id, n.name
    ON CONFLICT (workspace_id, name, person_id)
    DO UPDATE SET first_at = EXCLUDED.first_at WHERE f.first_at > EXCLUDED.first_at;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION tracking_event_firsts_recompute() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    WITH pairs AS (
        SELECT c.workspace_id, c.person_id, c.name,
               (SELECT min(e."timestamp") FROM tracking_event e
                WHERE e.workspace_id = c.workspace_id AND e.person_id = c.person_id AND e.name = c.name) AS first_at
        FROM (SELECT DISTINCT workspace_id, person_id, name FROM tracking_event_old) c
    ), gone AS (
        DELETE FROM tracking_personeventfirst f USING pairs p
        WHERE p.first_at IS NULL
          AND f.workspace_id = p.workspace_id AND f.person_id = p.person_id AND f.name = p.name
    )
    UPDATE tracking_personeventfirst f SET first_at = p.first_at FROM pairs p
    WHERE p.first_at IS NOT NULL AND f.first_at IS DISTINCT FROM p.first_at
      AND f.workspace_id = p.workspace_id AND f.person_id = p.person_id AND f.name = p.name;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER tracking_event_firsts_insert AFTER INSERT ON tracking_event
    REFERENCING NEW TABLE AS tracking_event_new
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_firsts_lower();
CREATE TRIGGER tracking_event_firsts_update_from AFTER UPDATE ON tracking_event
    REFERENCING OLD TABLE AS tracking_event_old
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_firsts_recompute();
CREATE TRIGGER tracking_event_firsts_update_to AFTER UPDATE ON tracking_event
    REFERENCING NEW TABLE AS tracking_event_new
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_firsts_lower();
CREATE TRIGGER tracking_event_firsts_delete AFTER DELETE ON tracking_event
    REFERENCING OLD TABLE AS tracking_event_old
    FOR EACH STATEMENT EXECUTE FUNCTION tracking_event_firsts_recompute();

INSERT INTO tracking_personeventfirst (workspace_id, person_id, name, first_at)
SELECT workspace_id, person_id, name, min("timestamp") FROM tracking_event GROUP BY workspace_id, person_id, name;
ANALYZE tracking_personeventfirst;
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS tracking_event_firsts_insert ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_firsts_update_from ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_firsts_update_to ON tracking_event;
DROP TRIGGER IF EXISTS tracking_event_firsts_delete ON tracking_event;
DROP FUNCTION IF EXISTS tracking_event_firsts_lower();
DROP FUNCTION IF EXISTS tracking_event_firsts_recompute();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_normal_names_and_unique_active_key_names"),
        ("tracking", "0010_tracking_plan"),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonEventFirst",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                ("first_at", models.DateTimeField()),
                (
                    "person",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="tracking.person",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.workspace",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("workspace", "name", "person"),
                        include=("first_at",),
                        name="person_event_first_unique",
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
