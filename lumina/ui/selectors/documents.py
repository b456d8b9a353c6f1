"""Reads of documents: listings, one document, its shares, versions and history."""

from __future__ import annotations

import uuid

from django.db.models import F, Func, IntegerField, Q, QuerySet

from lumina.security.api import object_grants
from lumina.ui.models import Document, DocumentUpdate, DocumentVersion
from lumina.ui.selectors.document_access import RESOURCE_TYPE, Reach


def document_list(
    *, reach: Reach, owner_id: uuid.UUID | None = None, search: str | None = None
) -> QuerySet[Document]:
    """Live documents the caller may read, last changed first.

    The caller's own and those shared with them; ``owner_id`` narrows to one owner's,
    and names someone else's only for managers (the view refuses the others).
    """
    rows = Document.objects.filter(deleted_at__isnull=True)
    if owner_id is not None and reach.manages:
        rows = rows.filter(owner_id=owner_id)
    else:
        shared = reach.shared.get("documents.read", frozenset())
        rows = rows.filter(Q(owner_id=reach.user_id) | Q(id__in=list(shared)))
        if owner_id is not None:
            rows = rows.filter(owner_id=owner_id)
    if search:
        rows = rows.filter(title__icontains=search)
    return rows.order_by("-updated_at", "id")


def document_shares(*, document: Document) -> list[dict]:
    """Who the document is shared with: one entry per principal, with its permissions."""
    by_principal: dict[tuple[str, str], dict] = {}
    for grant in object_grants(resource_type=RESOURCE_TYPE, resource_id=str(document.id)):
        entry = by_principal.setdefault(
            (grant.principal_type, grant.principal_id),
            {
                "principal_type": grant.principal_type,
                "principal_id": grant.principal_id,
                "principal_label": grant.principal_label,
                "actions": set(),
            },
        )
        entry["actions"].add(grant.action)
    return list(by_principal.values())


def version_list(*, document: Document) -> QuerySet[DocumentVersion]:
    return document.versions.defer("state").order_by("-created_at", "-upto_seq")


def version_get(*, document: Document, version_id: uuid.UUID) -> DocumentVersion | None:
    return document.versions.filter(id=version_id).first()


def history(*, document: Document, limit: int = 100) -> list[dict]:
    """The latest ``limit`` updates of the document's log, newest first (no content)."""
    rows = (
        DocumentUpdate.objects.filter(document=document)
        .order_by("-seq")
        .annotate(size=Func(F("data"), function="octet_length", output_field=IntegerField()))
        .values("seq", "user_id", "created_at", "size")[:limit]
    )
    return list(rows)
