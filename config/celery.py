"""The Celery app: ``celery -A config worker`` and ``celery -A config beat``."""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("cohortly")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules inside app subpackages.
app.autodiscover_tasks(["segmentation.webhooks"])
# Suggested segments' task module (insights.clustering_tasks).
app.autodiscover_tasks(["insights"], related_name="clustering_tasks")
# Predictive propensity's task module (insights.propensity_tasks).
app.autodiscover_tasks(["insights"], related_name="propensity_tasks")
# Triggered campaigns' task module (campaigns.trigger_tasks), beside the engine's campaigns.tasks.
app.autodiscover_tasks(["campaigns"], related_name="trigger_tasks")


@worker_ready.connect
@worker_process_init.connect
def urls_load(**_: object) -> None:
    """Load the URL configuration when a worker starts (in each process that runs tasks), not at
    the first campaign message: every email's links are reversed URLs."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (loading them is the point)
