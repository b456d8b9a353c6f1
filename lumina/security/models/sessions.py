"""Browser sessions: Django's database session row, plus who it belongs to and its activity.

Django documents extending its database session engine this way (``AbstractBaseSession``);
the extra columns are written by ``lumina.security.sessions.SessionStore`` from the
session's own data, so they can be listed and revoked per user.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class Session(AbstractBaseSession):
    # What a user sees and revokes: the session key itself is a bearer secret, never shown.
    public_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sessions",
    )
    user_agent = models.CharField(max_length=300, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # When the user signed in (the absolute lifetime counts from here).
    authenticated_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "security_session"
        indexes = [models.Index(fields=["user", "expire_date"], name="session_user_expiry")]

    @classmethod
    def get_session_store_class(cls):
        from lumina.security.sessions import SessionStore

        return SessionStore

    def __str__(self) -> str:
        return f"session {self.public_id} of {self.user_id or 'nobody'}"
