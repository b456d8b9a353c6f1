"""``manage.py events``: inspect the outbox, replay failed events, run the relay."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lumina.kernel import bus
from lumina.kernel.models import OutboxEvent


class Command(BaseCommand):
    help = "List pending/failed outbox events, replay them, or run the outbox relay."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Show pending and failed events (default).")
        listing.add_argument(
            "--status", choices=[s.value for s in OutboxEvent.Status], action="append"
        )
        listing.add_argument("--limit", type=int, default=100)
        replay = sub.add_parser("replay", help="Deliver failed (or the given) events now.")
        replay.add_argument(
            "ids", nargs="*", type=uuid.UUID, help="Event ids; default: all failed."
        )
        relay = sub.add_parser("relay", help="Dispatch due pending events, repeatedly.")
        relay.add_argument("--once", action="store_true", help="One pass, then exit.")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"_{action}")(**options)

    def _list(self, *, status: list[str] | None, limit: int, **_) -> None:
        statuses = status or [OutboxEvent.Status.PENDING, OutboxEvent.Status.FAILED]
        rows = OutboxEvent.objects.filter(status__in=statuses).order_by("created_at")[:limit]
        total = OutboxEvent.objects.filter(status__in=statuses).count()
        self.stdout.write(f"{'id':36}  {'event':40}  {'status':9}  {'attempts':>8}  last error")
        for row in rows:
            # last_error lines read "handler: Type: message"; the message is what helps here.
            error = row.last_error.splitlines()[0].split(": ", 1)[-1][:80] if row.last_error else ""
            self.stdout.write(
                f"{row.id!s:36}  {row.key:40}  {row.status:9}  {row.attempts:>8}  {error}"
            )
        self.stdout.write(f"{total} event(s) {'/'.join(statuses)}")

    def _replay(self, *, ids: list[uuid.UUID], **_) -> None:
        if ids:
            known = set(OutboxEvent.objects.filter(pk__in=ids).values_list("id", flat=True))
            missing = [str(i) for i in ids if i not in known]
            if missing:
                raise CommandError(f"no outbox event with id {', '.join(missing)}")
        rows = bus.replay(ids or None)
        delivered = [r for r in rows if r.status == OutboxEvent.Status.DELIVERED]
        for row in rows:
            self.stdout.write(f"{row.id}  {row.key}  {row.status}  attempts={row.attempts}")
        self.stdout.write(f"replayed {len(rows)}, delivered {len(delivered)}")
        if len(delivered) != len(rows):
            raise CommandError(f"{len(rows) - len(delivered)} event(s) still failing")

    def _relay(self, *, once: bool, **_) -> None:
        while True:
            count = bus.relay()
            if once:
                self.stdout.write(f"dispatched {count} event(s)")
                return
            time.sleep(settings.LUMINA_OUTBOX_RELAY_INTERVAL)
