"""Per-request cost of the security context: authorisation, token authentication, secrets.

Prints one table (operation, median µs, p90 µs, p99 µs, iterations, target) for:

* ``security.api.authorize(actor, action)``
  - role only: a user holding the built-in Developer role, an action the role allows;
  - role + object grant: a user whose only role (Viewer) does not allow the action,
    with a django-guardian object grant (made by ``services.rbac.grant_add``) on the
    ``Resource`` asked about;
  - role + policy: Developer allows, and an enabled Cedar policy (made by
    ``services.policies.policy_create``) applies to the action: a ``forbid`` whose
    ``when`` condition is false for the request, so the decision is still "allow" but
    the policy set is evaluated;
  - the same with cold caches (``cache_clear()`` before every call): what the first
    request of a process, or every process after an RBAC or policy change, pays;
* ``security.api.authenticate_token(raw)`` for a valid token, warm token cache, without
  and with ``REDIS_URL`` (db 13, a subprocess of this script): the revocation check reads
  the ``security.tokens`` generation from memory either way (``lumina.kernel.generations``);
* how long a role removal takes to reach another process: a child process calls
  ``authorize`` in a loop while this one removes and re-adds the role through the
  services (no Redis); each row's sample is the time from the commit to the child's
  first changed answer (promised: at most 1 s);
* one full authenticated REST request through Django's test client,
  ``GET /api/v1/auth/me`` with ``Authorization: Bearer …`` (every middleware, DRF, the
  access log), over both caches too;
* ``encrypt_secret`` and ``decrypt_secret`` of a 1 KiB secret, as they are (a data key
  row, an outbox event and its audit-chain append per call; decrypting as
  ``Actor.system("providers")``), and their cryptographic part alone
  (``lumina.security.crypto``: new data key, wrap, seal, encode / decode, unwrap, open).

Each operation is warmed with 200 calls, then N calls are timed one by one with
``time.perf_counter_ns`` (N = 5,000 for in-memory operations, 500 for those that reach
the database). Operation names give the number of SQL queries one call makes.
Log records are rendered as in production but written to /dev/null.

Run it from the repository root (well under two minutes):

    .venv/bin/python benchmarks/security.py          # --help for the options

It never touches dev data: it works in its own database, ``lumina_bench_security``, on
the embedded PostgreSQL server (dropped and re-created at start, dropped at the end),
and in Redis db 13 (flushed before and after). When Redis does not answer on
127.0.0.1:6379 the Redis rows say "skipped (not reachable)".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks.event_bus import setup_django  # noqa: E402

PGDATA = Path(os.environ.get("LUMINA_DATA_DIR") or ROOT / "var") / "pgdata"
DATABASE = "lumina_bench_security"
REDIS_CACHE_URL = "redis://127.0.0.1:6379/13"
WARMUP = 200
FAST_ITERATIONS = 5_000  # operations that stay in memory
DB_ITERATIONS = 500  # operations that reach the database
TARGET_1MS = "< 1 ms median"
SECRET_BYTES = 1024
SECRET_OWNER = "bench.Secret:1:api_key"  # noqa: S105 (an owner label, not a secret)
POLICY_TEXT = """\
// Never true for the benchmark's requests (they come from 127.0.0.1): the policy applies
// to memory.read, is evaluated on every such request, and the decision stays "allow".
forbid (principal, action == Lumina::Action::"memory.read", resource)
when { context.ip == "203.0.113.7" };
"""
CLIENT_IP = "127.0.0.1"
PROPAGATION_ROUNDS = 20
TARGET_PROPAGATION = "≤ 1 s (docs/security.md)"
RESULT_PREFIX = "security-benchmark-result "
CHILD_TIMEOUT = 120.0


@dataclasses.dataclass
class Row:
    operation: str
    iterations: int = 0
    median_us: float = 0.0
    p90_us: float = 0.0
    p99_us: float = 0.0
    target: str = ""
    note: str = ""


# --- Database and Django ------------------------------------------------------------------


def database_url(socket_dir: str) -> str:
    return pgserver.database_url(socket_dir, DATABASE)


def recreate_database(socket_dir: str, *, create: bool = True) -> None:
    pgserver.recreate_database(socket_dir, DATABASE, create=create)


def clean_environment(database: str) -> None:
    """Only what this benchmark sets reaches the settings (a developer's shell may set more)."""
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(DATABASE_URL=database, LUMINA_EVENT_TRANSPORT="inprocess")


def silence_log_output() -> None:
    """Keep log records rendered (they are part of the cost) but out of the terminal."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open for the life of the process)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def queries_of(call: Callable[[], Any]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured.captured_queries)


# --- Timing -------------------------------------------------------------------------------


def measure(
    operation: str,
    call: Callable[[], Any],
    *,
    iterations: int,
    target: str = "",
    check: Callable[[Any], None] | None = None,
    before_each: Callable[[], None] | None = None,
) -> Row:
    """Warm ``call`` up, then time ``iterations`` calls one by one."""
    result = call()
    if check is not None:
        check(result)
    for _ in range(WARMUP):
        if before_each is not None:
            before_each()
        call()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        if before_each is not None:
            before_each()
        started = clock()
        call()
        samples.append(clock() - started)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    row = Row(
        operation,
        iterations,
        median_us=statistics.median(samples) / 1000,
        p90_us=cuts[89] / 1000,
        p99_us=cuts[98] / 1000,
        target=target,
    )
    if target == TARGET_1MS:
        row.target += " (met)" if row.median_us < 1000 else " (MISSED)"
    progress(f"{operation}: median {row.median_us:,.1f} µs")
    return row


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# --- Fixtures -----------------------------------------------------------------------------


@dataclasses.dataclass
class Fixtures:
    owner: Any  # Actor of a superuser: makes grants and policies
    developer: Any  # Actor: holds the Developer role (a session, no token)
    viewer: Any  # Actor: holds Viewer, plus an object grant
    developer_id: uuid.UUID
    space_id: str


def actor_for(user: Any) -> Any:
    from lumina.security.api import Actor

    return Actor(
        user_id=user.pk,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_staff,
        is_active=user.is_active,
        ip_address=CLIENT_IP,
    )


def make_fixtures() -> Fixtures:
    from lumina.security.services import rbac
    from lumina.security.services.users import user_create

    owner = actor_for(user_create(email="owner@bench.invalid", password=None, is_superuser=True))
    developer = user_create(email="developer@bench.invalid", password=None)
    viewer = user_create(email="viewer@bench.invalid", password=None)
    rbac.role_assignment_create(actor=owner, role="Developer", user=str(developer.pk))
    rbac.role_assignment_create(actor=owner, role="Viewer", user=str(viewer.pk))
    space_id = str(uuid.uuid4())
    rbac.grant_add(
        actor=owner,
        principal=f"user:{viewer.pk}",
        action="memory.write",
        resource_type="memory.space",
        resource_id=space_id,
    )
    return Fixtures(owner, actor_for(developer), actor_for(viewer), developer.pk, space_id)


def issue_token(user_id: uuid.UUID) -> str:
    from lumina.security.api import Actor
    from lumina.security.services.tokens import token_create

    own = Actor(user_id=user_id, ip_address=CLIENT_IP)
    return token_create(user_id=user_id, actor=own, name="benchmark").secret


# --- Scenarios ----------------------------------------------------------------------------


def authorize_rows(fixtures: Fixtures) -> list[Row]:
    from lumina.security.api import Resource, authorize
    from lumina.security.services import authorization
    from lumina.security.services.policies import policy_create

    def allowed_by(prefix: str) -> Callable[[Any], None]:
        def check(decision: Any) -> None:
            expect(
                decision.allowed and decision.rules[0].startswith(prefix),
                f"expected an allow by {prefix}…, got {decision}",
            )

        return check

    developer, viewer = fixtures.developer, fixtures.viewer
    space = Resource(type="memory.space", id=fixtures.space_id)
    rows = [
        measure(
            "authorize: role only (Developer, providers.use)",
            lambda: authorize(developer, "providers.use"),
            iterations=FAST_ITERATIONS,
            target=TARGET_1MS,
            check=allowed_by("role:Developer"),
        ),
        measure(
            "authorize: object grant (Viewer role + grant, memory.write on memory.space)",
            lambda: authorize(viewer, "memory.write", space),
            iterations=FAST_ITERATIONS,
            target=TARGET_1MS,
            check=allowed_by("grant:"),
        ),
    ]

    policy_create(actor=fixtures.owner, name="benchmark: memory.read", cedar_text=POLICY_TEXT)
    outsider = dataclasses.replace(developer, ip_address="203.0.113.7")
    refused = authorize(outsider, "memory.read")
    expect(
        not refused.allowed and refused.reason.startswith("forbidden by policy"),
        f"the benchmark policy does not apply: {refused}",
    )
    rows.append(
        measure(
            "authorize: role + Cedar policy (forbid … when false, memory.read)",
            lambda: authorize(developer, "memory.read"),
            iterations=FAST_ITERATIONS,
            target=TARGET_1MS,
            check=allowed_by("role:Developer"),
        )
    )
    cold_queries = queries_of(
        lambda: (authorization.cache_clear(), authorize(developer, "memory.read"))
    )
    rows.append(
        measure(
            f"authorize: role + policy, cold caches ({cold_queries} queries)",
            lambda: authorize(developer, "memory.read"),
            iterations=DB_ITERATIONS,
            check=allowed_by("role:Developer"),
            before_each=authorization.cache_clear,
        )
    )
    return rows


def token_rows(raw: str, user_id: uuid.UUID, cache_name: str) -> list[Row]:
    from django.conf import settings
    from django.test import Client

    from lumina.security.api import authenticate_token

    def same_user(actor: Any) -> None:
        expect(actor.user_id == user_id and actor.token_id is not None, f"wrong actor {actor}")

    host = next((h for h in settings.ALLOWED_HOSTS if not h.startswith((".", "*"))), "localhost")
    client = Client(HTTP_HOST=host, REMOTE_ADDR=CLIENT_IP)
    header = f"Bearer {raw}"

    def me() -> Any:
        return client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=header)

    def answered(response: Any) -> None:
        expect(response.status_code == 200, f"/api/v1/auth/me answered {response.status_code}")
        body = response.json()
        expect(body.get("authenticated_by") == "token", f"unexpected /auth/me body {body}")

    authenticate_token(raw)  # fills the token cache
    auth_queries = queries_of(lambda: authenticate_token(raw))
    me()
    me_queries = queries_of(me)
    return [
        measure(
            f"authenticate_token, warm cache ({cache_name}; {auth_queries} queries)",
            lambda: authenticate_token(raw),
            iterations=FAST_ITERATIONS,
            target=TARGET_1MS,
            check=same_user,
        ),
        measure(
            f"GET /api/v1/auth/me, Bearer token ({cache_name}; {me_queries} queries)",
            me,
            iterations=FAST_ITERATIONS,
            check=answered,
        ),
    ]


def secret_rows() -> list[Row]:
    from lumina.security.api import Actor, decrypt_secret, encrypt_secret
    from lumina.security.crypto import envelope, token
    from lumina.security.crypto.keyring import current_keyring
    from lumina.security.crypto.token import SealedSecret
    from lumina.security.models.crypto import DataKey

    plaintext = ("0123456789abcdef" * (SECRET_BYTES // 16))[:SECRET_BYTES]
    providers = Actor.system("providers")
    ciphertext = encrypt_secret(plaintext, owner=SECRET_OWNER)

    def opened(result: str) -> None:
        expect(result == plaintext, "decrypt_secret did not return the plaintext")

    encrypt_queries = queries_of(lambda: encrypt_secret(plaintext, owner=SECRET_OWNER))
    decrypt_queries = queries_of(
        lambda: decrypt_secret(ciphertext, owner=SECRET_OWNER, actor=providers)
    )
    rows = [
        measure(
            f"encrypt_secret, 1 KiB ({encrypt_queries} queries incl. audit)",
            lambda: encrypt_secret(plaintext, owner=SECRET_OWNER),
            iterations=DB_ITERATIONS,
        ),
        measure(
            f'decrypt_secret, 1 KiB, Actor.system("providers") ({decrypt_queries} queries'
            " incl. audit)",
            lambda: decrypt_secret(ciphertext, owner=SECRET_OWNER, actor=providers),
            iterations=DB_ITERATIONS,
            check=opened,
        ),
    ]

    # The same work without the database: what secret_encrypt / _open do around their queries.
    keyring = current_keyring()
    data = plaintext.encode("utf-8")

    def seal_only() -> str:
        data_key_id = uuid.uuid4()
        data_key = envelope.new_data_key()
        envelope.wrap_data_key(
            data_key,
            kek=keyring.current_key,
            kek_version=keyring.current_version,
            data_key_id=data_key_id,
        )
        nonce, sealed = envelope.seal(
            data, data_key=data_key, aad=envelope.secret_aad(data_key_id, SECRET_OWNER)
        )
        return token.encode(SealedSecret(data_key_id=data_key_id, nonce=nonce, ciphertext=sealed))

    sealed_secret = token.decode(ciphertext)
    row = DataKey.objects.get(pk=sealed_secret.data_key_id)
    wrapped, kek_version = bytes(row.wrapped_key), row.kek_version

    def open_only() -> str:
        sealed = token.decode(ciphertext)
        data_key = envelope.unwrap_data_key(
            wrapped,
            kek=keyring.key(kek_version),
            kek_version=kek_version,
            data_key_id=sealed.data_key_id,
        )
        return envelope.open_sealed(
            sealed.nonce,
            sealed.ciphertext,
            data_key=data_key,
            aad=envelope.secret_aad(sealed.data_key_id, SECRET_OWNER),
        ).decode("utf-8")

    rows += [
        measure(
            "  crypto only: new data key, wrap, seal, encode",
            seal_only,
            iterations=FAST_ITERATIONS,
        ),
        measure(
            "  crypto only: decode, unwrap, open",
            open_only,
            iterations=FAST_ITERATIONS,
            check=opened,
        ),
    ]
    return rows


# --- Redis: the same token rows in a subprocess whose settings cache in Redis ---------------


def redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_CACHE_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def redis_rows() -> list[Row]:
    if not redis_reachable():
        skipped = "skipped (not reachable)"
        return [
            Row("authenticate_token, warm cache (Redis)", target=TARGET_1MS, note=skipped),
            Row("GET /api/v1/auth/me, Bearer token (Redis)", note=skipped),
        ]
    env = dict(os.environ, REDIS_URL=REDIS_CACHE_URL)
    child = subprocess.run(
        [sys.executable, __file__, "--redis-child"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    sys.stderr.write(child.stderr)
    if child.returncode != 0:
        raise RuntimeError(f"the Redis run failed (exit status {child.returncode})")
    result = next(line for line in child.stdout.splitlines() if line.startswith(RESULT_PREFIX))
    return [Row(**fields) for fields in json.loads(result.removeprefix(RESULT_PREFIX))]


def redis_child() -> None:
    """Run by ``redis_rows`` with REDIS_URL set; the parent migrated the database."""
    setup_django()
    silence_log_output()
    from django.conf import settings
    from django.core.cache import cache

    from lumina.security.services.users import user_create

    backend = settings.CACHES["default"]["BACKEND"]
    expect(backend.endswith("RedisCache"), f"the cache is {backend}, not Redis")
    cache.clear()  # db 13 is this benchmark's own
    try:
        user = user_create(email="redis-token@bench.invalid", password=None)
        rows = token_rows(issue_token(user.pk), user.pk, "Redis")
    finally:
        cache.clear()
    print(RESULT_PREFIX + json.dumps([dataclasses.asdict(row) for row in rows]), flush=True)


# --- A role change reaching another process -----------------------------------------------


def propagation_rows(fixtures: Fixtures, database: str) -> list[Row]:
    """Remove and re-add a role here; time until a child process's ``authorize`` agrees."""
    from django.db import transaction

    from lumina.security.models.rbac import RoleAssignment
    from lumina.security.services import rbac

    env = dict(os.environ, DATABASE_URL=database)
    env.pop("REDIS_URL", None)
    child = subprocess.Popen(
        [sys.executable, __file__, "--watch-child", str(fixtures.developer_id)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[int] = []
    # The child re-reads the generations once a second: changes at random moments within
    # that second, not in step with it (seeded, so runs compare).
    pauses = random.Random(7)
    try:
        expect(child.stdout.readline().strip() == "ready", "the watching child did not start")
        for round_number in range(PROPAGATION_ROUNDS):
            time.sleep(pauses.uniform(0.0, 1.0))
            with transaction.atomic():
                if round_number % 2 == 0:
                    held = RoleAssignment.objects.get(user_id=fixtures.developer_id)
                    rbac.role_assignment_delete(actor=fixtures.owner, assignment_id=held.id)
                else:
                    rbac.role_assignment_create(
                        actor=fixtures.owner, role="Developer", user=str(fixtures.developer_id)
                    )
            committed = time.monotonic_ns()
            line = child.stdout.readline().split()
            expect(line[:1] == ["changed"], f"unexpected child output {line}")
            samples.append(int(line[1]) - committed)
    finally:
        child.kill()
        child.wait()
    cuts = statistics.quantiles(samples, n=10, method="inclusive")
    row = Row(
        f"role change seen by another process, no Redis ({PROPAGATION_ROUNDS} changes)",
        len(samples),
        median_us=statistics.median(samples) / 1000,
        p90_us=cuts[8] / 1000,
        p99_us=max(samples) / 1000,
        target=TARGET_PROPAGATION,
    )
    row.target += " (met)" if max(samples) <= 1_000_000_000 else " (MISSED)"
    progress(
        f"{row.operation}: median {row.median_us / 1000:,.0f} ms, max {max(samples) / 1e6:,.0f} ms"
    )
    return [row]


def watch_child(user_id: str) -> None:
    """Run by ``propagation_rows``: print the time whenever the answer changes."""
    setup_django()
    silence_log_output()
    from lumina.security.api import Actor, authorize

    actor = Actor(user_id=uuid.UUID(user_id), ip_address=CLIENT_IP)
    answer = authorize(actor, "providers.use").allowed
    print("ready", flush=True)
    while True:
        now = authorize(actor, "providers.use").allowed
        if now != answer:
            print(f"changed {time.monotonic_ns()}", flush=True)
            answer = now
        time.sleep(0.001)


# --- Report -------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(rows: list[Row]) -> str:
    header = ("operation", "median µs", "p90 µs", "p99 µs", "iterations", "target")
    lines = []
    for row in rows:
        if row.note:
            lines.append((row.operation, row.note, "", "", "0", row.target))
            continue
        lines.append(
            (
                row.operation,
                f"{row.median_us:,.1f}",
                f"{row.p90_us:,.1f}",
                f"{row.p99_us:,.1f}",
                f"{row.iterations:,}",
                row.target,
            )
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first, *numbers, target = cells
        return "  ".join(
            [first.ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(numbers, widths[1:-1], strict=True)]
            + [target]
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


# --- Main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--watch-child", metavar="USER_ID", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.redis_child:
        redis_child()
        return
    if args.watch_child:
        watch_child(args.watch_child)
        return

    from config.embedded_postgres import ensure_server

    # This process holds a handle on the embedded server for the whole benchmark, so the
    # server stays up while the Redis subprocess connects to it by DATABASE_URL.
    socket_dir = ensure_server(PGDATA)
    recreate_database(socket_dir)
    clean_environment(database_url(socket_dir))
    setup_django()
    silence_log_output()
    from django.core.management import call_command
    from django.db import connections

    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    try:
        call_command("migrate", interactive=False, verbosity=0)
        fixtures = make_fixtures()
        raw = issue_token(fixtures.developer_id)
        rows = authorize_rows(fixtures)
        local = token_rows(raw, fixtures.developer_id, "LocMem")
        remote = redis_rows()
        # Each token row next to its Redis counterpart.
        rows += [local[0], remote[0], local[1], remote[1]]
        rows += propagation_rows(fixtures, database_url(socket_dir))
        rows += secret_rows()
    finally:
        connections.close_all()
        recreate_database(socket_dir, create=False)
    print(table(rows))
    print(
        f"\n{os.cpu_count()} CPUs; 1-min load average {load_at_start:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f}s in all;"
        f" database {DATABASE} dropped"
    )


if __name__ == "__main__":
    main()
