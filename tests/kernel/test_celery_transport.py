"""The Celery transport delivers through a real worker process and a real broker."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumina.kernel.models import OutboxEvent
from tests.conftest import database_url_for_subprocess, require_service

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")

BROKERS = [
    pytest.param("redis://127.0.0.1:6379/15", ("127.0.0.1", 6379), id="redis"),
    pytest.param("amqp://guest:guest@127.0.0.1:5672//", ("127.0.0.1", 5672), id="rabbitmq"),
]

PUBLISH = """
import sys, django
django.setup()
from django.db import transaction
from lumina.kernel.bus import publish
from tests.kernel.celery_probe import ProbeSent
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
for _ in range(count):  # one transaction, so one dispatch, each
    with transaction.atomic():
        event = ProbeSent(path=sys.argv[1], text=sys.argv[2])
        publish(event)
print(event.id)
"""


def _env(broker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url_for_subprocess(),
        CELERY_BROKER_URL=broker,
        LUMINA_EVENT_TRANSPORT="celery",
    )
    return env


@pytest.fixture
def worker(request):
    started = []

    def start(broker: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [str(CELERY), "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING",
             "--include=tests.kernel.celery_probe", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=_env(broker), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("broker", "address"), BROKERS)
def test_celery_transport_delivers_through_a_real_worker(worker, tmp_path, broker, address):
    require_service(*address, f"the {broker.partition(':')[0]} broker")
    process = worker(broker)
    target = tmp_path / "delivered.txt"

    published = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(target), "hello"],
        cwd=ROOT, env=_env(broker), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    event_id = published.stdout.strip().splitlines()[-1]

    deadline = time.monotonic() + 45
    row = None
    while time.monotonic() < deadline:
        row = OutboxEvent.objects.filter(pk=event_id).first()
        if row is not None and row.status == OutboxEvent.Status.DELIVERED:
            break
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.1)
    assert row is not None
    assert row.status == OutboxEvent.Status.DELIVERED, row.last_error
    assert row.attempts == 1
    lines = target.read_text().splitlines()
    assert lines == [f"hello pid={process.pid}"]  # once, by the worker, not the publisher


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_loses_no_event(tmp_path):
    env = _env("redis://127.0.0.1:1/0")  # nothing listens on port 1
    published = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(tmp_path / "x.txt"), "kept", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr  # the caller's commit still succeeds
    # One failed attempt, then the rest are left to the relay instead of each timing out.
    assert published.stderr.count("could not enqueue events") == 1
    assert OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).count() == 3
    row = OutboxEvent.objects.get(pk=published.stdout.strip().splitlines()[-1])
    assert row.status == OutboxEvent.Status.PENDING
    assert row.payload == {"path": str(tmp_path / "x.txt"), "text": "kept"}
    assert row.next_attempt_at > row.created_at  # the relay will pick it up
