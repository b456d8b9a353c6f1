"""Seed data written once per database, so that an operator's later removal is final."""

from __future__ import annotations

from django.db import models

__all__ = ["Seed"]


class Seed(models.Model):
    """One piece of seed data that has been written (``local/lumina-dev-chat`` …).

    Seeding runs after every ``migrate`` but writes only what has no mark here yet: a
    seeded model that an operator deletes stays deleted.
    """

    name = models.CharField(max_length=200, primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "providers_seed"

    def __str__(self) -> str:
        return self.name
