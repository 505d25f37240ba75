"""The events table: partitioned by month on ``timestamp``, with a DEFAULT
partition for anything outside the months created so far.

``tracking_event_partition_ensure(month)`` creates one month's partition and is
idempotent; when the DEFAULT partition already holds rows of that month it
moves them into the new partition. The periodic task
``tracking.tasks.tracking_maintenance`` calls it ahead of time. Indexes are
explained in docs/architecture.md. Like ``person_id``, ``workspace_id`` carries
no database constraint: a check per inserted row would cost the hottest path,
and deleting a workspace through Django deletes its events.
"""

from django.db import migrations

CREATE = r"""
CREATE SEQUENCE tracking_event_id_seq AS bigint;

CREATE TABLE tracking_event (
    id bigint NOT NULL DEFAULT nextval('tracking_event_id_seq'),
    workspace_id bigint NOT NULL,
    person_id bigint NOT NULL,
    name varchar(200) NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    "timestamp" timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    message_id varchar(255) NOT NULL,
    anonymous_id varchar(255),
    user_id varchar(255),
    session_id varchar(255),
    warnings jsonb NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

ALTER SEQUENCE tracking_event_id_seq OWNED BY tracking_event.id;

CREATE TABLE tracking_event_default PARTITION OF tracking_event DEFAULT;

-- A person's history, newest first; merges and erasure re-point/delete by it.
CREATE INDEX tracking_event_person_idx ON tracking_event (workspace_id, person_id, "timestamp");
-- Segment conditions on one event name inside a window; person_id rides along.
CREATE INDEX tracking_event_name_idx ON tracking_event (workspace_id, name, "timestamp") INCLUDE (person_id);
-- The live feed and "$any" windows: a workspace's events by time.
CREATE INDEX tracking_event_time_idx ON tracking_event (workspace_id, "timestamp");

CREATE FUNCTION tracking_event_partition_ensure(month date) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    low timestamptz := (to_char(date_trunc('month', month), 'YYYY-MM-DD') || ' 00:00:00+00')::timestamptz;
    high timestamptz := (to_char(date_trunc('month', month) + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00')::timestamptz;
    part text := 'tracking_event_' || to_char(date_trunc('month', month), 'YYYY_MM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise creators: the beat task and a migration may race.
    PERFORM pg_advisory_xact_lock(hashtext('tracking_event_partition_ensure'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM tracking_event_default WHERE "timestamp" >= low AND "timestamp" < high) THEN
        EXECUTE format('CREATE TABLE %I (LIKE tracking_event INCLUDING DEFAULTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM tracking_event_default WHERE "timestamp" >= %L AND "timestamp" < %L RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved', low, high, part);
        EXECUTE format('ALTER TABLE tracking_event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, low, high);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF tracking_event FOR VALUES FROM (%L) TO (%L)', part, low, high);
    END IF;
    RETURN true;
END
$fn$;

SELECT tracking_event_partition_ensure((now() AT TIME ZONE 'UTC')::date);
SELECT tracking_event_partition_ensure(((now() AT TIME ZONE 'UTC') + interval '1 month')::date);
"""

DROP = r"""
DROP FUNCTION IF EXISTS tracking_event_partition_ensure(date);
DROP TABLE IF EXISTS tracking_event CASCADE;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("tracking", "0001_initial"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
