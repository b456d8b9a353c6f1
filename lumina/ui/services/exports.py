"""Exports of a document's content as text, Markdown or JSON; imports back.

Text roots (CodeMirror, Monaco, Quill) export as they are; XML fragments (ProseMirror and
TipTap through y-prosemirror) as their blocks: headings, paragraphs, lists, quotes, code
blocks, rules, with marks (bold, italic, code, strike, links) in Markdown. Maps and
arrays appear in JSON, and in Markdown as a JSON block; plain text leaves them out.
The JSON export also carries the whole Yjs state (base64), which ``import`` reads back.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from typing import Any

from django.db import transaction
from pycrdt import Doc, Text, XmlText

from lumina.kernel.bus import publish
from lumina.security.api import Actor
from lumina.ui.errors import ContentInvalidError
from lumina.ui.events import DocumentImported
from lumina.ui.models import Document
from lumina.ui.selectors.document_access import EDIT, READ, document_for
from lumina.ui.services import document_state
from lumina.ui.services.content import (
    ARRAY,
    MAP,
    TEXT,
    XML,
    doc_of,
    restore_update,
    root_value,
    roots_of,
)
from lumina.ui.services.content import to_json as content_json

FORMATS = ("text", "markdown", "json")
MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
    "json": "application/json",
}
EXTENSIONS = {"text": "txt", "markdown": "md", "json": "json"}


@dataclasses.dataclass(frozen=True)
class Export:
    document_id: uuid.UUID
    title: str
    format: str
    media_type: str
    filename: str
    body: str


# --- ProseMirror / TipTap nodes --------------------------------------------------------


def _kind(tag: str) -> str:
    """Node names of both schemas as one: ``bullet_list`` and ``bulletList`` alike."""
    return tag.replace("_", "").lower()


def _marked(text: str, marks: dict[str, Any] | None) -> str:
    if not marks or not text.strip():
        return text
    names = {_kind(name): value for name, value in marks.items() if value is not None}
    if "code" in names:
        text = f"`{text}`"
    if names.keys() & {"bold", "strong"}:
        text = f"**{text}**"
    if names.keys() & {"italic", "em"}:
        text = f"*{text}*"
    if "strike" in names or "strikethrough" in names:
        text = f"~~{text}~~"
    link = names.get("link")
    if isinstance(link, dict) and link.get("href"):
        text = f"[{text}]({link['href']})"
    return text


def _inline(node: Any, markdown: bool) -> str:
    if isinstance(node, XmlText):
        parts = []
        for content, marks in node.diff():
            if isinstance(content, str):
                parts.append(_marked(content, marks) if markdown else content)
        return "".join(parts)
    kind = _kind(node.tag)
    if kind == "hardbreak":
        return "  \n" if markdown else "\n"
    if kind == "image":
        attributes = dict(node.attributes)
        alt, src = attributes.get("alt") or "", attributes.get("src") or ""
        return f"![{alt}]({src})" if markdown else alt
    return "".join(_inline(child, markdown) for child in node.children)


def _list(node: Any, kind: str, markdown: bool, depth: int) -> str:
    """One block: an item a line (its own blocks indented under it)."""
    attributes = dict(node.attributes)
    number = int(float(attributes.get("start") or attributes.get("order") or 1))
    lines: list[str] = []
    for item in node.children:
        if isinstance(item, XmlText):
            continue
        marker = f"{number}." if kind == "orderedlist" else "-"
        number += 1
        if markdown and (kind == "tasklist" or _kind(item.tag) == "taskitem"):
            checked = str(dict(item.attributes).get("checked", "")).lower() == "true"
            marker = f"- [{'x' if checked else ' '}]"
        body = _join(_blocks(item.children, markdown, depth + 1)).replace("\n\n", "\n")
        first, *rest = body.split("\n") or [""]
        indent = " " * (len(marker) + 1)
        lines.append(f"{marker} {first}" + "".join(f"\n{indent}{line}" for line in rest))
    return "\n".join(lines)


def _blocks(children: Any, markdown: bool, depth: int = 0) -> list[str]:
    blocks: list[str] = []
    for node in children:
        if isinstance(node, XmlText):
            blocks.append(_inline(node, markdown))
            continue
        kind = _kind(node.tag)
        attributes = dict(node.attributes)
        if kind == "heading":
            level = int(float(attributes.get("level") or 1))
            text = _inline(node, markdown)
            blocks.append(f"{'#' * min(max(level, 1), 6)} {text}" if markdown else text)
        elif kind in ("bulletlist", "orderedlist", "tasklist"):
            blocks.append(_list(node, kind, markdown, depth))
        elif kind == "blockquote":
            inner = "\n\n".join(_blocks(node.children, markdown, depth))
            lines = inner.split("\n")
            blocks.append("\n".join(f"> {line}" if markdown else line for line in lines))
        elif kind == "codeblock":
            text = _inline(node, False)
            language = attributes.get("language") or ""
            blocks.append(f"```{language}\n{text}\n```" if markdown else text)
        elif kind == "horizontalrule":
            blocks.append("---" if markdown else "")
        elif kind in ("paragraph", "text"):
            blocks.append(_inline(node, markdown))
        else:
            inner = _blocks(node.children, markdown, depth)
            blocks.append("\n\n".join(inner) if inner else _inline(node, markdown))
    return blocks


def _join(blocks: list[str]) -> str:
    text = "\n\n".join(block for block in blocks)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n")


def _text_markdown(text: Any) -> str:
    return "".join(
        _marked(content, marks) if isinstance(content, str) else ""
        for content, marks in text.diff()
    )


# --- Renderers -------------------------------------------------------------------------


def render_text(state: bytes) -> str:
    doc = doc_of(state)
    parts = []
    for root in roots_of(state):
        value = root_value(doc, root)
        if root.kind == TEXT:
            parts.append(str(value))
        elif root.kind == XML:
            parts.append(_join(_blocks(value.children, markdown=False)))
    return "\n\n".join(part for part in parts if part) + "\n" if parts else ""


def render_markdown(state: bytes, *, title: str) -> str:
    doc = doc_of(state)
    roots = roots_of(state)
    parts = [f"# {title}"]
    several = len(roots) > 1
    for root in roots:
        value = root_value(doc, root)
        if several:
            parts.append(f"## {root.name}")
        if root.kind == TEXT:
            parts.append(_text_markdown(value))
        elif root.kind == XML:
            parts.append(_join(_blocks(value.children, markdown=True)))
        elif root.kind in (MAP, ARRAY):
            payload = json.dumps(value.to_py(), indent=2, ensure_ascii=False, default=str)
            parts.append(f"```json\n{payload}\n```")
    return "\n\n".join(part for part in parts if part) + "\n"


def render_json(state: bytes, *, document: Document, seq: int) -> str:
    body = {
        "id": str(document.id),
        "title": document.title,
        "owner_id": str(document.owner_id),
        "seq": seq,
        "content": content_json(state),
        "yjs_state": base64.b64encode(state).decode("ascii"),
    }
    return json.dumps(body, ensure_ascii=False, default=str)


def export_of(document: Document, output: str) -> Export:
    if output not in FORMATS:
        raise ContentInvalidError("format", f"One of {', '.join(FORMATS)}.")
    loaded = document_state.state_load_with_seq(document.id)
    if output == "text":
        body = render_text(loaded.state)
    elif output == "markdown":
        body = render_markdown(loaded.state, title=document.title)
    else:
        body = render_json(loaded.state, document=document, seq=loaded.seq)
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in document.title)[:80].strip()
    return Export(
        document_id=document.id,
        title=document.title,
        format=output,
        media_type=MEDIA_TYPES[output],
        filename=f"{safe or 'document'}.{EXTENSIONS[output]}",
        body=body,
    )


def document_export(*, actor: Actor, document_id: uuid.UUID, output: str) -> Export:
    """The document's content as ``text``, ``markdown`` or ``json`` (``documents.read``)."""
    return export_of(document_for(actor=actor, document_id=document_id, action=READ), output)


# --- Imports ---------------------------------------------------------------------------


def state_from_text(text: str, *, root: str) -> bytes:
    doc = Doc()
    doc.get(root, type=Text).insert(0, text)
    return doc.get_update()


def state_from_json(body: str) -> bytes:
    """The Yjs state of one of our JSON exports."""
    try:
        data = json.loads(body)
        encoded = data["yjs_state"]
        state = base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError):
        raise ContentInvalidError(
            "file", "Not a Lumina document export (a JSON object with yjs_state)."
        ) from None
    return state


def state_check(state: bytes, *, field: str) -> None:
    """Refuse what is not a Yjs (v1) update, naming ``field``."""
    try:
        doc_of(state)
    except Exception:  # pycrdt's decoder raises plain exceptions
        raise ContentInvalidError(field, "Not a Yjs update.") from None


def document_import(*, actor: Actor, document_id: uuid.UUID, update: bytes) -> int:
    """Make the document's content the given state's, as one new update; its seq.

    The document's history is kept: the update replaces the content (as a restore does),
    and reaches connected clients.
    """
    document = document_for(actor=actor, document_id=document_id, action=EDIT)
    try:
        doc_of(update)
    except Exception:
        raise ContentInvalidError("file", "Not a Yjs update.") from None
    with transaction.atomic():
        current = document_state.state_load(document.id)
        change = restore_update(current, update)
        seq = document_state.update_append(
            document_id=document.id, update=change, user_id=actor.user_id
        )
        document_state.update_publish(document_id=document.id, seq=seq, update=change)
        publish(
            DocumentImported(
                document_id=document.id, owner_id=document.owner_id, seq=seq, actor_id=actor.user_id
            )
        )
    return seq
