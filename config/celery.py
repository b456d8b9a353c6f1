"""The Celery app: event delivery and periodic outbox relay. ``make worker`` runs it."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lumina")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lumina.kernel"])
