"""``segmentation_try_timestamptz(text)``: a cast that answers NULL instead of failing.

Segment filters ``before``/``after`` compare event and trait properties as
timestamps; a property that is not one must make the filter false, not the
query fail. Zone-less strings are read as UTC, as the definition parser does.
"""

from django.db import migrations

CREATE = r"""
CREATE FUNCTION segmentation_try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE SET timezone = 'UTC' AS $fn$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS segmentation_try_timestamptz(text);"


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
