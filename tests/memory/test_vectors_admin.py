"""The admin pages for collections create, change and delete through the services."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from lumina.memory.models.vectors import Collection
from tests.memory.conftest import user_with_role

pytestmark = pytest.mark.django_db


def _staff(role: str) -> Client:
    client = Client()
    client.force_login(user_with_role(role, is_staff=True))
    return client


def _indexes(collection: Collection) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE %s", [f"%{collection.id.hex}%"]
        )
        return cursor.fetchone()[0]


FORM = {
    "name": "from-admin",
    "description": "",
    "embedding_model": "",
    "dimension": "3",
    "distance": "l2",
    "hnsw_m": "16",
    "hnsw_ef_construction": "64",
    "default_ef_search": "100",
}


def test_a_developer_creates_changes_and_deletes_a_collection_in_the_admin():
    client = _staff("Developer")
    response = client.post(reverse("admin:memory_collection_add"), FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    collection = Collection.objects.get(name="from-admin")
    assert (collection.dimension, collection.distance) == (3, "l2")
    assert _indexes(collection) == 1
    change = reverse("admin:memory_collection_change", args=[collection.pk])
    response = client.post(change, {"description": "edited", "default_ef_search": "64"})
    assert response.status_code == 302
    collection.refresh_from_db()
    assert (collection.description, collection.default_ef_search) == ("edited", 64)
    response = client.post(
        reverse("admin:memory_collection_delete", args=[collection.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert _indexes(collection) == 0


def test_the_services_refusals_show_on_the_form():
    client = _staff("Developer")
    response = client.post(
        reverse("admin:memory_collection_add"),
        {**FORM, "hnsw_m": "40", "hnsw_ef_construction": "50"},
    )
    assert response.status_code == 200
    assert "at least twice hnsw_m" in response.content.decode()
    assert not Collection.objects.filter(name="from-admin").exists()


def test_staff_see_only_their_own_collections_without_memory_manage():
    owner = user_with_role("Developer", is_staff=True)
    Collection.objects.create(name="private", owner_id=owner.pk, embedding_model="", dimension=2)
    other = _staff("Developer")
    listing = other.get(reverse("admin:memory_collection_changelist")).content.decode()
    assert "private" not in listing
    admin = _staff("Admin")
    assert "private" in admin.get(reverse("admin:memory_collection_changelist")).content.decode()
