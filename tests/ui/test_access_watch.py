"""The access watch shared by the document and realtime sockets (``ui/consumers/watch.py``)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from lumina.ui.consumers import watch


class Socket:
    def __init__(self, name: str, *, fails: bool = False) -> None:
        self.name, self.fails = name, fails
        self.applied: list[object] = []

    def check(self) -> str:
        if self.fails:
            raise RuntimeError("database unreachable")
        return f"checked {self.name}"


def _in_thread(fn):
    return sync_to_async(fn, thread_sensitive=False)


async def _drained(batch: watch.Batch) -> None:
    while batch.task is not None and not batch.task.done():
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_batch_checks_every_marked_socket_once_and_a_failure_counts_as_failed():
    calls: list[str] = []

    def check(socket: Socket) -> str:
        calls.append(socket.name)
        return socket.check()

    batch = watch.Batch(
        check,
        lambda socket, result: socket.applied.append(result),
        failed="failed",
        in_thread=_in_thread,
    )
    good, bad = Socket("good"), Socket("bad", fails=True)
    batch.add(good)
    batch.add(bad)
    batch.add(good)  # marked twice before the batch ran: checked once
    await _drained(batch)

    assert sorted(calls) == ["bad", "good"]
    assert good.applied == ["checked good"]
    assert bad.applied == ["failed"]


@pytest.mark.asyncio
async def test_one_socket_failing_to_apply_does_not_keep_the_others_from_theirs():
    def apply(socket: Socket, result: str) -> None:
        if socket.name == "broken":
            raise RuntimeError("closed under us")
        socket.applied.append(result)

    batch = watch.Batch(Socket.check, apply, failed="failed", in_thread=_in_thread)
    sockets = [Socket("broken"), Socket("a"), Socket("b")]
    for socket in sockets:
        batch.add(socket)
    await _drained(batch)

    assert [socket.applied for socket in sockets] == [[], ["checked a"], ["checked b"]]


@pytest.mark.asyncio
async def test_a_discarded_socket_is_not_checked():
    batch = watch.Batch(
        Socket.check,
        lambda socket, result: socket.applied.append(result),
        failed="failed",
        in_thread=_in_thread,
    )
    gone, kept = Socket("gone"), Socket("kept")
    batch.add(gone)
    batch.add(kept)
    batch.discard(gone)
    await _drained(batch)

    assert gone.applied == []
    assert kept.applied == ["checked kept"]
