"""The Celery app: event delivery, periodic outbox relay and audit head export.

``make worker`` and ``make beat`` run it.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lumina")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lumina.kernel", "lumina.security"])
