"""``manage.py serve``: what ``make run`` runs — migrate, ensure an admin, serve ASGI."""

from __future__ import annotations

import importlib.util
import pkgutil
import time

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection, connections

from lumina.kernel.database import require_pgvector
from lumina.security.api import ensure_admin


class Command(BaseCommand):
    help = "Prepare the database and serve HTTP + websockets with uvicorn."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.LUMINA_HOST)
        parser.add_argument("--port", type=int, default=settings.LUMINA_PORT)
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument(
            "--prepare-only",
            action="store_true",
            help="Migrate and ensure the admin user, then exit (a deploy's release step).",
        )

    def handle(
        self, *args, host: str, port: int, no_migrate: bool, prepare_only: bool, **options
    ) -> None:
        import uvicorn

        started = time.monotonic()
        try:
            vector = require_pgvector()
        except (ImproperlyConfigured, OperationalError) as exc:
            raise CommandError(f"Cannot start: {exc}".strip()) from None
        if not no_migrate and migrations_pending():
            call_command("migrate", interactive=False, verbosity=0)
        try:
            admin = ensure_admin(
                email=settings.LUMINA_ADMIN_EMAIL, password=settings.LUMINA_ADMIN_PASSWORD
            )
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(
                f"Cannot create the admin {settings.LUMINA_ADMIN_EMAIL}: {messages} "
                "(check LUMINA_ADMIN_EMAIL / LUMINA_ADMIN_PASSWORD)"
            ) from None
        connections.close_all()  # the server's threads open their own
        if prepare_only:
            self.stdout.write(
                f"Database ready; admin {admin.user.email}"
                + (f" / {admin.generated_password}" if admin.generated_password else "")
            )
            return

        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        lines = [
            f"Lumina is starting on {base}  (database ready in {time.monotonic() - started:.1f}s,"
            f" pgvector {vector})",
            f"  Admin console  {base}/admin/",
            f"  API docs       {base}/api/docs/",
            f"  Health         {base}/health/ready",
        ]
        if admin.generated_password:
            lines.append(
                f"  Admin login    {admin.user.email} / {admin.generated_password}"
                "   (generated once; change it in the admin)"
            )
        elif admin.created:
            lines.append(f"  Admin login    {admin.user.email} / (LUMINA_ADMIN_PASSWORD)")
        else:
            lines.append(f"  Admin login    {admin.user.email} (existing account)")
        lines.append("Press Ctrl-C to stop the server and the embedded database.")
        self.stdout.write("\n".join(lines))

        uvicorn.run(
            "config.asgi:application",
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,  # Django's LOGGING (structlog JSON) already owns the handlers
            access_log=False,  # RequestIdMiddleware writes the access log with request ids
            server_header=False,
            # Longer than the idle timeout of clients' and proxies' pools (60 s is common):
            # a server that closes a kept-alive connection first races the client's next
            # request on it, which fails as "connection reset" or a proxy's 502.
            timeout_keep_alive=75,
        )


def migrations_pending() -> bool:
    """Whether an app has a migration file the database has not recorded as applied.

    File names and one query answer it for an up-to-date database, where ``migrate``
    would import every migration module to find nothing to do (some 3 MiB that a serving
    process would keep, and a second of start-up). Any doubt answers True: ``migrate``
    then decides, as it always did.
    """
    if "django_migrations" not in connection.introspection.table_names():
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations")
        applied = set(cursor.fetchall())
    for config in apps.get_app_configs():
        spec = importlib.util.find_spec(f"{config.name}.migrations")
        if spec is None or not spec.submodule_search_locations:
            continue
        for module in pkgutil.iter_modules(spec.submodule_search_locations):
            # The files MigrationLoader reads: modules not starting with _ or ~.
            readable = not module.ispkg and module.name[0] not in "_~"
            if readable and (config.label, module.name) not in applied:
                return True
    return False
