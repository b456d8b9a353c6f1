"""A document's Yjs content as plain data, and back: what exports, imports and restores use.

A Yjs update does not say what type each root is (a client decides when it asks for
``getText('codemirror')`` or ``getXmlFragment('prosemirror')``), so each root is read four
ways on a fresh copy and its kind inferred: characters make a text, keyed entries a map,
XML elements an XML fragment (ProseMirror/TipTap through y-prosemirror), other items an
array. Roots that are empty are left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

TEXT, MAP, ARRAY, XML = "text", "map", "array", "xml"


@dataclasses.dataclass(frozen=True)
class Root:
    name: str
    kind: str


def doc_of(state: bytes) -> Doc:
    doc = Doc()
    apply_untrusted(doc, state)
    return doc


def apply_untrusted(doc: Doc, update: bytes) -> None:
    """Apply bytes from outside; ValueError for anything that is not a Yjs v1 update.

    yrs sizes a table by the update's leading client count before reading on: six bytes
    claiming 2^28 clients cost 0.4 s of CPU and hundreds of MiB. A client takes three bytes
    at least, so a larger count is refused first. Some malformed updates make yrs panic,
    which pyo3 raises as PanicException, a BaseException: it is a ValueError here.
    """
    check_count(update, entry_bytes=3)
    with decoding("a Yjs update"):
        doc.apply_update(update)


@contextlib.contextmanager
def decoding(what: str) -> Iterator[None]:
    """Whatever yrs raises inside, a panic included, as ValueError."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise ValueError(f"not {what}: {error}") from None


def check_count(data: bytes, *, entry_bytes: int) -> None:
    """ValueError when the leading varuint (an update's clients, a state vector's entries)
    claims more entries than the bytes could hold."""
    count = shift = 0
    for index, byte in enumerate(data[:10]):
        count |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if count * entry_bytes > len(data) - index - 1:
                raise ValueError(f"claims {count} entries in {len(data)} bytes")
            return
    if data:
        raise ValueError("the leading count does not end")


def missing_update(stored: bytes, copy: Doc) -> bytes | None:
    """What a client's copy holds that ``stored`` lacks, as one update (None: nothing).

    A state vector alone would miss deletions (they advance no clock), so the copy's delete
    set comes along and the stored state is compared whole, before and after.
    """
    doc = doc_of(stored)
    before = doc.get_update()
    missing = copy.get_update(doc.get_state())
    doc.apply_update(missing)
    return None if doc.get_update() == before else missing


def _probe(state: bytes, name: str, kind: type) -> Any:
    return doc_of(state).get(name, type=kind)


def roots_of(state: bytes) -> list[Root]:
    """The non-empty roots of a state, by name, with their inferred kind."""
    names = sorted(doc_of(state).keys())
    found: list[Root] = []
    for name in names:
        if len(_probe(state, name, Map)):
            found.append(Root(name, MAP))
            continue
        items = list(_probe(state, name, Array))
        if not items:
            continue
        if any(isinstance(item, XmlElement | XmlText) for item in items):
            found.append(Root(name, XML))
        elif str(_probe(state, name, Text)):
            found.append(Root(name, TEXT))
        else:
            found.append(Root(name, ARRAY))
    return found


_KINDS: dict[str, type] = {TEXT: Text, MAP: Map, ARRAY: Array, XML: XmlFragment}


def root_value(doc: Doc, root: Root) -> Any:
    return doc.get(root.name, type=_KINDS[root.kind])


# --- To plain data (JSON export) -------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, XmlElement | XmlText):
        return xml_nodes([value])
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map | Array):
        return value.to_py()
    return value


def xml_nodes(children: Any) -> list[dict]:
    """ProseMirror's JSON: elements as ``{"type", "attrs", "content"}``, text as runs
    ``{"type": "text", "text", "marks"}``."""
    nodes: list[dict] = []
    for node in children:
        if isinstance(node, XmlText):
            nodes.extend(text_runs(node))
            continue
        element: dict[str, Any] = {"type": node.tag}
        attributes = dict(node.attributes)
        if attributes:
            element["attrs"] = attributes
        content = xml_nodes(node.children)
        if content:
            element["content"] = content
        nodes.append(element)
    return nodes


def text_runs(text: Text | XmlText) -> list[dict]:
    """Runs of text with their marks (formatting attributes); embeds as ``embed``."""
    runs: list[dict] = []
    for content, attributes in text.diff():
        run: dict[str, Any] = (
            {"type": "text", "text": content}
            if isinstance(content, str)
            else {"type": "embed", "value": _plain(content)}
        )
        if attributes:
            run["marks"] = [
                {"type": name, **({"attrs": value} if isinstance(value, dict) and value else {})}
                for name, value in attributes.items()
                if value is not None
            ]
        runs.append(run)
    return runs


def to_json(state: bytes) -> dict[str, dict]:
    """Every non-empty root: ``{"kind", "value"}`` (text: string and runs; XML: nodes)."""
    doc = doc_of(state)
    content: dict[str, dict] = {}
    for root in roots_of(state):
        value = root_value(doc, root)
        if root.kind == TEXT:
            content[root.name] = {"kind": TEXT, "text": str(value), "runs": text_runs(value)}
        elif root.kind == XML:
            content[root.name] = {
                "kind": XML,
                "content": xml_nodes(value.children),
            }
        else:
            content[root.name] = {"kind": root.kind, "value": value.to_py()}
    return content


# --- Restoring another state's content ------------------------------------------------


def _copy_runs(source: Text | XmlText, target: Text | XmlText) -> None:
    index = 0
    for content, attributes in source.diff():
        if isinstance(content, str):
            target.insert(index, content, attributes or None)
            index += len(content)
        else:
            target.insert_embed(index, _plain(content), attributes or None)
            index += 1


def _copy_xml(node: XmlElement | XmlText) -> XmlElement | XmlText:
    if isinstance(node, XmlText):
        return XmlText()
    return XmlElement(node.tag, dict(node.attributes))


def _fill_xml(source: XmlFragment | XmlElement, target: XmlFragment | XmlElement) -> None:
    for child in source.children:
        copy = target.children.append(_copy_xml(child))
        if isinstance(child, XmlText):
            _copy_runs(child, copy)
        else:
            _fill_xml(child, copy)


def restore_update(current: bytes, wanted: bytes) -> bytes:
    """An update that, applied after ``current``, makes the content equal ``wanted``'s.

    History is not rewritten: the update deletes what is there and inserts the wanted
    content anew (nested shared types inside maps and arrays come back as plain values).
    """
    doc = doc_of(current)
    before = doc.get_state()
    wanted_doc = doc_of(wanted)
    wanted_roots = {root.name: root for root in roots_of(wanted)}
    current_roots = {root.name: root for root in roots_of(current)}
    with doc.transaction():
        for name, root in current_roots.items():
            if name not in wanted_roots:
                target = root_value(doc, root)
                if root.kind == XML:
                    while len(target.children):
                        del target.children[0]
                else:
                    target.clear()
        for root in wanted_roots.values():
            source = root_value(wanted_doc, root)
            target = root_value(doc, root)
            if root.kind == TEXT:
                target.clear()
                _copy_runs(source, target)
            elif root.kind == MAP:
                wanted_value = source.to_py()
                for key in [k for k in list(target) if k not in wanted_value]:
                    del target[key]
                for key, value in wanted_value.items():
                    if key not in target or _plain(target[key]) != value:
                        target[key] = value
            elif root.kind == ARRAY:
                target.clear()
                target.extend(source.to_py())
            else:
                while len(target.children):
                    del target.children[0]
                _fill_xml(source, target)
    return doc.get_update(before)
