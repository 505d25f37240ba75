"""A broadcast run's fan-out: one ``Send`` per person of the audience, written in one statement.

The audience is the people in any included segment and in no excluded one, read from
segmentation's memberships as they are when the run is due. One ``INSERT ... SELECT``
writes every send (memory does not grow with the audience), each with its variant by the
SQL form of ``campaigns.assignment`` (holdout people get a row in state ``holdout``) and
``ON CONFLICT DO NOTHING`` on the (campaign, person, occurrence) key: a fan-out run twice
writes nothing the second time.

Due times: ``send_at`` (or the run's time), or, for a ``local_time`` campaign, the wall-clock
time of ``send_at`` in the workspace's timezone taken in each person's timezone (their
``timezone`` trait when PostgreSQL knows it as an IANA name, else the workspace's); a time
already past in the person's zone is due at once. Such a run is fanned out as soon as
the first timezone (UTC+14) reaches that wall-clock time.

A ``send_time: "best_hour"`` campaign sends each person at the next occurrence (from the fan-out
on, which happens at ``send_at`` or launch; within 7 days) of their best hour of the week in their zone
(``campaigns.active_hours``), at a minute spread by hash inside that hour; a control share
(``send_time_control_percent``, by ``bucket(..., "send_time")``) gets a uniformly random hour
instead (``bucket(..., "send_hour")``), so the results can compare both.

An ``auto_winner`` campaign is fanned out in two phases (``campaigns.winner``): first the holdout
and the test share (``bucket(..., "winner_test") < test_percent``) with their variants; after the
wait, the winner to the rest of the audience.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.sql import dangerously_execute_across_workspaces, execute_scoped, with_tables
from campaigns.active_hours import MIN_EVENTS, workspace_best_hour
from campaigns.assignment import bucket_sql, variant_sql
from campaigns.localtime import zone_named
from campaigns.models import (
    HOURS_OF_WEEK,
    ActiveHours,
    Campaign,
    CampaignAudience,
    CampaignKind,
    CampaignSettings,
    CampaignStatus,
    Run,
    Send,
    SendState,
    SendTime,
    Variant,
)
from segmentation.models import Membership
from tracking.models import Person

logger = logging.getLogger(__name__)

FANNED_OUT_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
# The phases of a fan-out: every send at once, or (an automatic winner) the test share first and
# the rest later with the winner.
ALL, TEST, REST = "all", "test", "rest"
CONTROL_SALT = "send_time"
CONTROL_HOUR_SALT = "send_hour"
SPREAD_SALT = "send_minute"
WINNER_TEST_SALT = "winner_test"
# The earliest a wall-clock time arrives anywhere: UTC+14 (Kiribati).
EARLIEST_OFFSET = timedelta(hours=14)
# How far ahead of ``send_at`` a local-time run can be due (UTC+14 seen from UTC-12).
LOCAL_LEAD = timedelta(hours=26)


def occurrence_of(run: Run) -> str:
    return f"run:{run.pk}"


def settings_for(workspace_id: int) -> CampaignSettings:
    """The workspace's sending settings, or the defaults (unsaved) when it has none yet."""
    return CampaignSettings.objects.filter(workspace_id=workspace_id).first() or CampaignSettings(
        workspace_id=workspace_id
    )


def workspace_zone_name(settings_row: CampaignSettings) -> str:
    return settings_row.timezone if zone_named(settings_row.timezone) is not None else "UTC"


def local_wall_clock(campaign: Campaign, run: Run, zone_name: str) -> datetime:
    """The naive wall-clock time a local-time campaign sends at in every zone."""
    at = campaign.send_at or run.created_at
    zone = zone_named(zone_name)
    assert zone is not None
    return at.astimezone(zone).replace(tzinfo=None)


def run_is_due(campaign: Campaign, run: Run, *, now: datetime, zone_name: str) -> bool:
    if not campaign.local_time:
        return campaign.send_at is None or campaign.send_at <= now
    earliest = local_wall_clock(campaign, run, zone_name).replace(tzinfo=UTC) - EARLIEST_OFFSET
    return earliest <= now


def runs_due(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """(workspace id, run id) of broadcast runs not fanned out whose campaign is due."""
    now = now or timezone.now()
    # Across workspaces: the beat's tick serves every workspace's runs; each fan-out runs in its scope.
    candidates = (
        Run.objects.unscoped()
        .filter(
            fanned_out_at__isnull=True,
            campaign__kind=CampaignKind.BROADCAST,
            campaign__status__in=FANNED_OUT_STATUSES,
        )
        .select_related("campaign")
        .order_by("pk")
    )
    due = []
    for run in candidates:
        campaign = run.campaign
        if campaign.send_at is not None and campaign.send_at > now + (
            LOCAL_LEAD if campaign.local_time else timedelta()
        ):
            continue
        zone_name = "UTC"
        if campaign.local_time:
            # unscoped: read for this run's own workspace, named explicitly.
            row = CampaignSettings.objects.unscoped().filter(workspace_id=run.workspace_id).first()
            zone_name = workspace_zone_name(row) if row else "UTC"
        if run_is_due(campaign, run, now=now, zone_name=zone_name):
            due.append((run.workspace_id, run.pk))
    return due


_AUDIENCE = """
    SELECT DISTINCT inc.person_id FROM {membership} inc
    WHERE inc.workspace_id = %(workspace_id)s AND inc.segment_id = ANY(%(included)s::bigint[])
      AND NOT EXISTS (
        SELECT 1 FROM {membership} exc
        WHERE exc.workspace_id = %(workspace_id)s AND exc.segment_id = ANY(%(excluded)s::bigint[])
          AND exc.person_id = inc.person_id
      )
"""

_INSERT = """
INSERT INTO {send} (workspace_id, campaign_id, variant_id, person_id, occurrence, channel, state, reason,
                    due_at, attempts, recipient, created_at)
SELECT %(workspace_id)s, %(campaign)s, a.variant, a.person_id, %(occurrence)s, %(channel)s,
       CASE WHEN a.variant IS NULL THEN 'holdout' ELSE 'pending' END, '', a.due_at, 0, '', %(now)s
FROM (
    SELECT m.person_id, {variant} AS variant, {due} AS due_at
    FROM ({audience}) AS m
    JOIN {person} p ON p.workspace_id = %(workspace_id)s AND p.id = m.person_id
    {zones}
) AS a
{where}
ON CONFLICT DO NOTHING
"""
# The person's zone when PostgreSQL knows their trait as a zone name; read once per statement.
_ZONES = "LEFT JOIN (SELECT name FROM pg_timezone_names) AS z ON z.name = p.traits->>'timezone'"
_LOCAL_DUE = "GREATEST((%(wall_clock)s::timestamp AT TIME ZONE COALESCE(z.name, %(zone)s)), %(now)s::timestamptz)"


# Best hour: the person's zone, the hour of the week they are sent at (their best hour with enough
# history, else the workspace's; a random one in the control share), a spread inside the hour, and
# from those the next time that hour begins (plus the spread) from ``start`` on, in wall-clock time.
_BEST_HOUR_ZONES = """
LEFT JOIN (SELECT name FROM pg_timezone_names) AS z ON z.name = p.traits->>'timezone'
LEFT JOIN {active} ah ON ah.workspace_id = %(workspace_id)s AND ah.person_id = m.person_id
    AND ah.events >= %(min_events)s
CROSS JOIN LATERAL (
    SELECT w.zone, w.local_hour, w.hour, w.spread,
           (extract(isodow FROM w.local_hour)::int - 1) * 24 + extract(hour FROM w.local_hour)::int AS start_hour
    FROM (SELECT COALESCE(z.name, %(zone)s) AS zone,
                 date_trunc('hour', %(start)s::timestamptz AT TIME ZONE COALESCE(z.name, %(zone)s)) AS local_hour,
                 CASE WHEN {control} < %(control)s::float8 THEN floor({control_hour} * 168)::int
                      ELSE COALESCE(ah.best_hour, %(workspace_hour)s) END AS hour,
                 floor({spread} * 3600)::int AS spread) AS w
) AS bh
"""
_BEST_HOUR_DUE = """GREATEST(%(start)s::timestamptz,
    (bh.local_hour + make_interval(hours => mod(bh.hour - bh.start_hour + 168, 168), secs => bh.spread))
    AT TIME ZONE bh.zone)"""


def _statement(campaign: Campaign, variants: list[Variant], *, phase: str = ALL) -> tuple[str, dict[str, object]]:
    variant, params = variant_sql(campaign=campaign, variants=variants, person_column="m.person_id")
    local = campaign.local_time
    best_hour = campaign.send_time == SendTime.BEST_HOUR
    where = ""
    if phase != ALL:
        test = bucket_sql(campaign_param="assign_campaign", person_column="a.person_id", salt=WINNER_TEST_SALT)
        # The test share and every holdout row first; the rest (never the holdout) later.
        where = (
            f"WHERE a.variant IS NULL OR {test} < %(test_share)s::float8"
            if phase == TEST
            else f"WHERE a.variant IS NOT NULL AND {test} >= %(test_share)s::float8"
        )
    zones, due = "", "%(due)s::timestamptz"
    if best_hour:
        zones = (
            _BEST_HOUR_ZONES.replace(
                "{control}",
                bucket_sql(campaign_param="assign_campaign", person_column="m.person_id", salt=CONTROL_SALT),
            )
            .replace(
                "{control_hour}",
                bucket_sql(campaign_param="assign_campaign", person_column="m.person_id", salt=CONTROL_HOUR_SALT),
            )
            .replace(
                "{spread}", bucket_sql(campaign_param="assign_campaign", person_column="m.person_id", salt=SPREAD_SALT)
            )
        )
        due = _BEST_HOUR_DUE
    elif local:
        zones, due = _ZONES, _LOCAL_DUE
    sql = with_tables(
        _INSERT.replace("{audience}", _AUDIENCE)
        .replace("{variant}", variant)
        .replace("{due}", due)
        .replace("{zones}", zones)
        .replace("{where}", where),
        send=Send,
        membership=Membership,
        person=Person,
        active=ActiveHours,
    )
    return sql, params


def sends_write(
    *,
    workspace: Workspace,
    campaign: Campaign,
    run: Run,
    variants: list[Variant],
    now: datetime,
    phase: str = ALL,
    start: datetime | None = None,
) -> int:
    """Write the sends of ``run`` for the audience as its memberships are now, in one statement; how
    many were written. ``start``: when the sends are due (a best hour: the first one from then on)."""
    audience = list(
        CampaignAudience.objects.filter(workspace=workspace, campaign=campaign).values_list("segment_id", "exclude")
    )
    included = [segment for segment, exclude in audience if not exclude]
    excluded = [segment for segment, exclude in audience if exclude]
    if not variants or not included:
        return 0
    settings_row = settings_for(workspace.pk)
    zone_name = workspace_zone_name(settings_row)
    sql, params = _statement(campaign, variants, phase=phase)
    params |= {
        "campaign": campaign.pk,
        "occurrence": occurrence_of(run),
        "channel": campaign.channel,
        "now": now,
        "included": included,
        "excluded": excluded,
    }
    if phase != ALL:
        params["test_share"] = winner_test_share(campaign)
    if campaign.send_time == SendTime.BEST_HOUR:
        params |= {
            # The fan-out runs once send_at has come: the first best hour from now on (a late
            # fan-out never makes a send due in the past, outside its hour).
            "start": start or now,
            "zone": zone_name,
            "min_events": MIN_EVENTS,
            "control": campaign.send_time_control_percent / 100,
            "workspace_hour": workspace_best_hour(workspace.pk),
        }
    elif campaign.local_time:
        params |= {"wall_clock": local_wall_clock(campaign, run, zone_name), "zone": zone_name}
    else:
        params["due"] = start or campaign.send_at or now
    with connection.cursor() as cursor:
        execute_scoped(cursor, sql, params, workspace_id=workspace.pk)
        return max(cursor.rowcount, 0)


def winner_test_share(campaign: Campaign) -> float:
    """The share of the audience an automatic winner's variants are tested on, in [0, 1]."""
    config = campaign.auto_winner if isinstance(campaign.auto_winner, dict) else {}
    return int(config.get("test_percent", 100)) / 100


def control_share(campaign: Campaign) -> float:
    return campaign.send_time_control_percent / 100 if campaign.send_time == SendTime.BEST_HOUR else 0.0


assert HOURS_OF_WEEK == 168  # the SQL above spells the week out


def run_fan_out(*, workspace: Workspace, run_id: int, now: datetime | None = None) -> int | None:
    """Write the sends of a due run and mark it fanned out; the number of sends written.

    None when there is nothing to do: the run is gone, fanned out, taken by another worker,
    not due, or its campaign is not scheduled or sending (paused: it is fanned out on resume).
    """
    now = now or timezone.now()
    with transaction.atomic():
        run = (
            Run.objects.filter(workspace=workspace, pk=run_id, fanned_out_at__isnull=True)
            .select_related("campaign")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if run is None:
            return None
        campaign = run.campaign
        settings_row = settings_for(workspace.pk)
        zone_name = workspace_zone_name(settings_row)
        if campaign.status not in FANNED_OUT_STATUSES or not run_is_due(campaign, run, now=now, zone_name=zone_name):
            return None
        variants = list(Variant.objects.filter(workspace=workspace, campaign=campaign).order_by("position"))
        phase = TEST if campaign.auto_winner and campaign.winner_decided_at is None else ALL
        written = sends_write(workspace=workspace, campaign=campaign, run=run, variants=variants, now=now, phase=phase)
        if not variants:
            logger.error("Campaign %s of workspace %s has no variant: nothing sent", campaign.pk, workspace.pk)
        run.total = Send.objects.filter(workspace=workspace, campaign=campaign, occurrence=occurrence_of(run)).count()
        run.fanned_out_at = now
        run.save(update_fields=["total", "fanned_out_at"])
        if campaign.status == CampaignStatus.SCHEDULED:
            campaign.status = CampaignStatus.SENDING
            campaign.save(update_fields=["status", "updated_at"])
    return written


# A fan-out writing at least this many sends has the send table's statistics refreshed.
ANALYZE_AFTER = 10_000


def send_statistics_refresh() -> None:
    """``ANALYZE`` the send table: queued by a fan-out that wrote ``ANALYZE_AFTER`` sends or more
    (``campaigns.tasks``), run beside the sending rather than before it.

    Until autovacuum gets to it, the planner would see the workspace's new sends as the few rows
    of the table's older statistics, and look up the dispatcher's marks (by id, a handful at a
    time) through the workspace's index instead of the primary key: a scan of the run's sent
    messages per statement, which grows as the run goes. ``ANALYZE`` reads a bounded sample (a
    few seconds on a large, much-updated table).
    """
    with connection.cursor() as cursor:
        dangerously_execute_across_workspaces(
            cursor, with_tables("ANALYZE {send}", send=Send), why="statistics are kept per table, not per workspace"
        )


def runs_finish(*, now: datetime | None = None) -> int:
    """Mark fanned-out runs finished when none of their sends is pending or claimed, and their
    sending campaign ``sent``; answers how many runs finished."""
    now = now or timezone.now()
    finished = 0
    # Across workspaces: the beat's tick closes every workspace's runs; each check names its workspace.
    # An automatic winner's run waits for its decision (the rest of the audience has no sends yet).
    open_runs = (
        Run.objects.unscoped()
        .filter(fanned_out_at__isnull=False, finished_at__isnull=True)
        .exclude(campaign__auto_winner__isnull=False, campaign__winner_decided_at__isnull=True)
    )
    for run in open_runs.select_related("campaign"):
        # unscoped: filtered on this run's workspace and campaign explicitly.
        waiting = (
            Send.objects.unscoped()
            .filter(
                workspace_id=run.workspace_id,
                campaign_id=run.campaign_id,
                state__in=[SendState.PENDING, SendState.CLAIMED],
                occurrence=occurrence_of(run),
            )
            .exists()
        )
        if waiting:
            continue
        with transaction.atomic():
            updated = (
                Run.objects.unscoped()
                .filter(pk=run.pk, workspace_id=run.workspace_id, finished_at__isnull=True)
                .update(finished_at=now)
            )
            if updated:
                Campaign.objects.unscoped().filter(
                    pk=run.campaign_id, workspace_id=run.workspace_id, status=CampaignStatus.SENDING
                ).update(status=CampaignStatus.SENT, finished_at=now, updated_at=now)
                finished += updated
    return finished
