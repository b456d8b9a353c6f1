"""Project wiring: settings, URLs, ASGI/WSGI entry points and the Celery app.

The Celery app (``config.celery``) is not imported here: a web process using the
in-process transport never loads Celery. ``celery -A config`` finds ``config.celery``
itself, and the Celery transport imports it (``LUMINA_CELERY_APP``) before it sends.
"""
