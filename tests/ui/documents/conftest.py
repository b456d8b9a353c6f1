"""People with each built-in role, documents with content, clients signed in as them."""

from __future__ import annotations

import uuid

import pytest
from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText
from rest_framework.test import APIClient

from lumina.security.models.users import User
from lumina.ui.models import Document
from lumina.ui.services import document_state
from tests.security.rbac_support import give_role

DOCUMENTS = "/api/v1/documents"


def user_with_role(role: str | None, **extra) -> User:
    user = User.objects.create_user(f"{uuid.uuid4().hex[:10]}@example.com", None, **extra)
    if role is not None:
        give_role(user, role)
    return user


def client_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


class People:
    """Created on first use: ``nobody`` (no role), ``viewer``, ``developer``,
    ``other_developer``, ``admin``, ``owner`` (the Owner role) and ``staff`` (is_staff,
    no role)."""

    ROLES = {
        "nobody": (None, {}),
        "viewer": ("Viewer", {}),
        "developer": ("Developer", {}),
        "other_developer": ("Developer", {}),
        "admin": ("Admin", {}),
        "owner": ("Owner", {}),
        "staff": (None, {"is_staff": True}),
    }

    def __getattr__(self, name: str):
        if name not in self.ROLES:
            raise AttributeError(name)
        role, extra = self.ROLES[name]
        user = user_with_role(role, **extra)
        setattr(self, name, user)
        return user


@pytest.fixture
def people(db) -> People:
    return People()


def tiptap_state() -> bytes:
    """What TipTap (y-prosemirror) writes: a heading, a paragraph with marks, a list."""
    doc = Doc()
    fragment = doc.get("default", type=XmlFragment)
    heading = fragment.children.append(XmlElement("heading", {"level": 2}))
    heading.children.append(XmlText("Plan"))
    paragraph = fragment.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText("Ship it bold and linked"))
    text.format(8, 12, {"bold": {}})
    text.format(17, 23, {"link": {"href": "https://example.org/"}})
    bullets = fragment.children.append(XmlElement("bulletList"))
    for words in ("one", "two"):
        item = bullets.children.append(XmlElement("listItem"))
        item.children.append(XmlElement("paragraph")).children.append(XmlText(words))
    return doc.get_update()


def text_state(text: str, *, root: str = "codemirror") -> bytes:
    doc = Doc()
    doc.get(root, type=Text).insert(0, text)
    return doc.get_update()


def append(document: Document, update: bytes) -> int:
    return document_state.update_append(document_id=document.id, update=update, user_id=None)


def edit_text(document: Document, text: str, *, root: str = "codemirror") -> None:
    """Replace a text root's content as a client would: an update on the current state."""
    doc = Doc()
    doc.apply_update(document_state.state_load(document.id))
    before = doc.get_state()
    target = doc.get(root, type=Text)
    target.clear()
    target.insert(0, text)
    append(document, doc.get_update(before))


def map_state(values: dict) -> bytes:
    doc = Doc()
    target = doc.get("meta", type=Map)
    for key, value in values.items():
        target[key] = value
    return doc.get_update()


def make_document(owner, title: str = "Notes", *, content: bytes | None = None) -> Document:
    document = Document.objects.create(title=title, owner_id=owner.pk)
    if content is not None:
        append(document, content)
    return document
