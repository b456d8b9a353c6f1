"""The Celery app: event delivery, periodic outbox relay and audit head export.

``make worker`` and ``make beat`` run it.
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lumina")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lumina.kernel", "lumina.security", "lumina.memory"])


# The contexts' lifecycle hooks (lumina.kernel.lifecycle) for a worker: a prefork pool's
# children run tasks (and buffer their usage), so each child runs them; with the solo or
# threads pool the main process does.
@signals.worker_process_init.connect
def _child_started(**_: object) -> None:
    from lumina.kernel import lifecycle

    lifecycle.startup_sync(lifecycle.WORKER)


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _stopping(**_: object) -> None:
    from lumina.kernel import lifecycle

    lifecycle.shutdown_sync(lifecycle.WORKER)
