"""The incremental Server-Sent Events parser the adapters read streams with."""

from __future__ import annotations

import asyncio

import pytest

from lumina.providers.adapters.base import UpstreamProtocolError
from lumina.providers.adapters.sse import Event, SSEParser, iter_events, load_json

ANTHROPIC_STYLE = (
    b'event: message_start\ndata: {"type": "message_start"}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b": keep-alive comment\n\n"
    b"data: first line\ndata: second line\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message_start", b'{"type": "message_start"}'),
    ("ping", b'{"type": "ping"}'),
    ("message", b"first line\nsecond line"),
    ("message", b"no-space"),
    ("message", b"[DONE]"),
]


def parse(*chunks: bytes) -> list[Event]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_events_with_names_comments_and_multi_line_data():
    assert parse(ANTHROPIC_STYLE) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_endings(newline):
    assert parse(ANTHROPIC_STYLE.replace(b"\n", newline)) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_events_split_at_every_possible_byte(newline):
    stream = ANTHROPIC_STYLE.replace(b"\n", newline)

    one_byte_at_a_time = parse(*(stream[i : i + 1] for i in range(len(stream))))

    assert one_byte_at_a_time == EXPECTED
    for cut in range(len(stream)):
        assert parse(stream[:cut], stream[cut:]) == EXPECTED


def test_cr_at_the_end_of_a_read_and_lf_at_the_start_of_the_next_is_one_line_end():
    assert parse(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == [
        ("message", b"a"),
        ("message", b"b"),
    ]


def test_an_event_without_data_is_not_dispatched():
    assert parse(b"event: ping\n\nid: 4\nretry: 100\n\ndata: x\n\n") == [("message", b"x")]


def test_a_field_without_a_colon_and_unknown_fields_are_handled():
    assert parse(b"data\nfoo: bar\n\n") == [("message", b"")]


def test_a_leading_byte_order_mark_is_ignored():
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [("message", b"x")]


def test_an_unterminated_last_event_is_dropped():
    async def chunks():
        yield b"data: complete\n\n"
        yield b"data: never finished"

    async def run():
        return [event async for event in iter_events(chunks())]

    assert asyncio.run(run()) == [("message", b"complete")]


def test_malformed_json_is_a_protocol_error_naming_the_provider():
    assert load_json(b'{"ok": true}', "p") == {"ok": True}
    with pytest.raises(UpstreamProtocolError) as caught:
        load_json(b'{"id": "x", "choices": [', "acme-openai")

    assert "acme-openai" in caught.value.message
    assert caught.value.code == "upstream_protocol_error"
    assert not caught.value.retryable
