"""The event-sourced document state: append, load, compact, validate."""

from __future__ import annotations

import threading
import uuid

import pytest
from pycrdt import Doc, Map, Text

from lumina.kernel.errors import NotFoundError
from lumina.ui.models import DocumentSnapshot, DocumentUpdate
from lumina.ui.services import document_state
from lumina.ui.services.content import apply_untrusted, check_count
from tests.ui.sync.conftest import make_document, make_user
from tests.ui.yjs_inputs import HUGE_COUNT_STATE_VECTOR, HUGE_COUNT_UPDATE, PANICKING_UPDATE


def edits(count: int) -> list[bytes]:
    """``count`` successive updates of one client: inserts, deletes and map writes."""
    doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for number in range(count):
        if number % 3 == 2:
            del text[0:1]
        elif number % 3 == 1:
            doc.get("m", type=Map)[f"k{number % 4}"] = number
        else:
            text.insert(len(text), f"{number},")
    assert len(updates) == count
    return updates


def text_of(state: bytes) -> tuple[str, dict]:
    doc = Doc()
    doc.apply_update(state)
    return str(doc.get("t", type=Text)), doc.get("m", type=Map).to_py()


@pytest.mark.django_db
def test_load_applies_every_update_in_order_and_compaction_keeps_the_content():
    document = make_document(make_user())
    updates = edits(30)
    reference = Doc()
    for update in updates:
        reference.apply_update(update)
        document_state.update_append(document_id=document.id, update=update, user_id=None)

    expected = (str(reference.get("t", type=Text)), reference.get("m", type=Map).to_py())
    assert text_of(document_state.state_load(document.id)) == expected

    assert document_state.compact(document.id) == 30
    assert DocumentSnapshot.objects.filter(document=document).count() == 1
    assert document_state.compact(document.id) is None  # nothing new
    more = edits(33)[30:]
    for update in more:
        reference.apply_update(update)
        document_state.update_append(document_id=document.id, update=update, user_id=None)
    loaded = document_state.state_load_with_seq(document.id)
    assert loaded.seq == 33
    assert text_of(loaded.state) == (
        str(reference.get("t", type=Text)),
        reference.get("m", type=Map).to_py(),
    )
    assert DocumentUpdate.objects.filter(document=document).count() == 33  # history kept


@pytest.mark.django_db
def test_appending_what_is_not_a_yjs_update_is_refused_naming_the_field(settings):
    document = make_document(make_user())
    with pytest.raises(document_state.InvalidUpdateError) as refused:
        document_state.update_append(document_id=document.id, update=b"\xff\x00junk", user_id=None)
    assert "update" in refused.value.fields
    settings.LUMINA_DOCUMENTS_MAX_UPDATE_BYTES = 1024
    with pytest.raises(document_state.InvalidUpdateError):
        document_state.update_append(document_id=document.id, update=b"\x00" * 2048, user_id=None)
    assert not DocumentUpdate.objects.filter(document=document).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("update", [PANICKING_UPDATE, HUGE_COUNT_UPDATE])
def test_an_update_that_breaks_the_decoder_is_refused_like_any_other(update):
    document = make_document(make_user())
    with pytest.raises(document_state.InvalidUpdateError) as refused:
        document_state.update_append(document_id=document.id, update=update, user_id=None)
    assert "update" in refused.value.fields
    assert not DocumentUpdate.objects.filter(document=document).exists()


def test_a_count_larger_than_the_bytes_could_hold_is_refused_before_the_decoder():
    with pytest.raises(ValueError, match="claims 268435456 entries in 8 bytes"):
        apply_untrusted(Doc(), HUGE_COUNT_UPDATE)
    with pytest.raises(ValueError, match="claims 268435456 entries"):
        check_count(HUGE_COUNT_STATE_VECTOR, entry_bytes=2)
    good = Doc()
    good.get("t", type=Text).insert(0, "fine")
    copy = Doc()
    apply_untrusted(copy, good.get_update())  # a real update passes
    assert str(copy.get("t", type=Text)) == "fine"
    check_count(good.get_state(), entry_bytes=2)


@pytest.mark.django_db
def test_unknown_or_deleted_documents_are_not_found():
    with pytest.raises(NotFoundError):
        document_state.state_load(uuid.uuid4())
    with pytest.raises(NotFoundError):
        document_state.update_append(document_id=uuid.uuid4(), update=edits(1)[0], user_id=None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_get_distinct_consecutive_seqs():
    document = make_document(make_user())
    updates = edits(40)
    seqs: list[int] = []
    errors: list[BaseException] = []

    def append(chunk: list[bytes]) -> None:
        from django.db import connection

        try:
            for update in chunk:
                seqs.extend(
                    document_state.updates_append(document_id=document.id, updates=[(update, None)])
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(updates[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(seqs) == list(range(1, 41))
