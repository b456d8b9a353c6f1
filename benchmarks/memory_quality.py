"""Retrieval quality on the conversations of ``benchmarks/data/memory_quality/``.

Each conversation is imported for a user of its own (``memory.api.memories_import``, the
service behind ``POST /memory/import``), with the local embedder. Then every question is
searched with ``memory.api.memory_search`` in four modes (text, vector, hybrid, graph),
``now`` set to the question's ``asked_at``, and two tables are printed:

1. evidence recall@1/5/10 per question kind and mode: the share of a question's evidence
   turns among the turns of its top k hits (a fact or summary hit counts for the turns
   in its provenance), averaged over the questions of that kind;
2. compression: each conversation with a question as its latest message is compressed
   (``context_compress``, extractive summaries) to 10%, 25% and 50% of its tokens; the
   share of evidence turns still in the context verbatim, also counting those quoted in a
   summary, also counting those brought back among the memories retrieved for the question.

It works in its own database, ``lumina_bench_memory_quality``, dropped at the end.

    .venv/bin/python benchmarks/memory_quality.py            # about a minute or two
    .venv/bin/python benchmarks/memory_quality.py --details  # each question's misses too
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._support import pgserver  # noqa: E402
from benchmarks._support.stats import table  # noqa: E402

DATABASE = "lumina_bench_memory_quality"
DATA = ROOT / "benchmarks" / "data" / "memory_quality"
KINDS = ("single-fact", "multi-hop", "temporal", "open-domain")
MODES = ("text", "vector", "hybrid", "graph")
KS = (1, 5, 10)
BUDGETS = (0.10, 0.25, 0.50)
SYSTEM_PROMPT = "You are a helpful assistant who remembers this conversation."


def load() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))]


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def import_file(conversation: dict) -> str:
    """The conversation in the import format (``POST /memory/import``)."""
    return json.dumps(
        {
            "sessions": [
                {
                    "session_id": session["id"],
                    "occurred_at": session["date"],
                    "turns": [
                        {
                            "id": turn["id"],
                            "speaker": turn["speaker"],
                            "text": turn["text"],
                            "occurred_at": turn["occurred_at"],
                        }
                        for turn in session["turns"]
                    ],
                }
                for session in conversation["sessions"]
            ]
        }
    )


def setup(conversations: list[dict]) -> dict[str, object]:
    """A Developer per conversation, its turns imported; conversation id -> actor."""
    import secrets

    from django.contrib.auth import get_user_model

    from lumina.memory import api as memory
    from lumina.security.models.rbac import Role, RoleAssignment
    from lumina.security.services.rbac import roles_seed_builtin
    from lumina.security.types import Actor

    roles_seed_builtin()
    developer = Role.objects.get(name="Developer")
    actors = {}
    for conversation in conversations:
        user = get_user_model().objects.create_user(
            f"{conversation['id']}@bench.example", secrets.token_urlsafe(16)
        )
        RoleAssignment.objects.create(role=developer, user=user)
        actor = Actor.for_user(user)
        result = memory.memories_import(actor=actor, text=import_file(conversation))
        turns = sum(len(s["turns"]) for s in conversation["sessions"])
        if result.imported != turns or result.embedding != "done":
            raise RuntimeError(f"{conversation['id']}: imported {result}, expected {turns}")
        actors[conversation["id"]] = actor
    return actors


def turn_ids(actor) -> dict[str, str]:
    """Record id -> the dataset's turn id, for every turn of the actor."""
    from lumina.memory import api as memory

    return {
        str(record.id): record.external_id
        for record in memory.memory_list(actor=actor, layer="working")
        if record.external_id
    }


def hit_turns(hit, by_record: dict[str, str]) -> list[str]:
    record = hit.record
    if record.external_id:
        return [record.external_id]
    return [by_record[str(i)] for i in record.provenance if str(i) in by_record]


def retrieval(conversations, actors, *, details: bool) -> tuple[dict, list[str]]:
    from lumina.memory import api as memory

    recall: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    notes: list[str] = []
    for conversation in conversations:
        actor = actors[conversation["id"]]
        by_record = turn_ids(actor)
        for question in conversation["questions"]:
            evidence = set(question["evidence"])
            for mode in MODES:
                result = memory.memory_search(
                    actor=actor,
                    query=question["question"],
                    k=max(KS),
                    mode=mode,
                    now=parse(question["asked_at"]),
                )
                ranked: list[str] = []
                for hit in result.hits:
                    ranked.append(hit_turns(hit, by_record))
                for k in KS:
                    found = {turn for turns in ranked[:k] for turn in turns}
                    recall[(question["kind"], mode, k)].append(
                        len(evidence & found) / len(evidence)
                    )
                if details and mode == "hybrid":
                    found = {turn for turns in ranked for turn in turns}
                    missed = sorted(evidence - found)
                    if missed:
                        notes.append(f"{question['id']} ({question['kind']}) missed {missed}")
    return recall, notes


def conversation_messages(conversation: dict) -> tuple[list[dict], dict[str, int]]:
    """The conversation as chat messages (first speaker 'user', the other 'assistant'),
    and each turn's position among them."""
    speakers: list[str] = []
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    position: dict[str, int] = {}
    for session in conversation["sessions"]:
        for turn in session["turns"]:
            if turn["speaker"] not in speakers:
                speakers.append(turn["speaker"])
            role = "user" if turn["speaker"] == speakers[0] else "assistant"
            position[turn["id"]] = len(messages)
            messages.append({"role": role, "content": f"{turn['speaker']}: {turn['text']}"})
    return messages, position


def compression(conversations, actors) -> dict:
    from lumina.memory.services.compression import context_compress
    from lumina.providers import api as providers

    kept: dict[tuple[float, str], list[float]] = defaultdict(list)
    ratios: dict[float, list[float]] = defaultdict(list)
    for conversation in conversations:
        actor = actors[conversation["id"]]
        by_record = turn_ids(actor)
        history, position = conversation_messages(conversation)
        for question in conversation["questions"]:
            messages = [*history, {"role": "user", "content": question["question"]}]
            total = providers.count_message_tokens(messages)
            evidence = question["evidence"]
            for share in BUDGETS:
                budget = int(total * share)
                result = context_compress(
                    actor=actor,
                    messages=messages,
                    budget=budget,
                    summary="extractive",
                    keep_recent=2,
                )
                ratios[share].append(result.tokens_after / total)
                verbatim = set(result.kept)
                quoted = {i for s in result.segments if s.included for i in s.covered}
                remembered = {by_record.get(m) for m in result.memories}
                quoted |= verbatim
                stages = {
                    "verbatim": {t for t in evidence if position[t] in verbatim},
                    "+ summaries": {t for t in evidence if position[t] in quoted},
                }
                stages["+ memories"] = stages["+ summaries"] | (set(evidence) & remembered)
                for stage, present in stages.items():
                    kept[(share, stage)].append(len(present) / len(evidence))
    return {"kept": kept, "ratios": ratios}


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(conversations, recall, compressed, notes, seconds: float) -> str:
    counts = defaultdict(int)
    for conversation in conversations:
        for question in conversation["questions"]:
            counts[question["kind"]] += 1
    turns = sum(len(s["turns"]) for c in conversations for s in c["sessions"])
    header = ("kind", "questions", "mode", *(f"recall@{k}" for k in KS))
    rows = []
    for kind in (*KINDS, "all"):
        kinds = KINDS if kind == "all" else (kind,)
        for mode in MODES:
            values = {k: mean([v for kd in kinds for v in recall[(kd, mode, k)]]) for k in KS}
            number = str(sum(counts[kd] for kd in kinds)) if mode == MODES[0] else ""
            rows.append(
                (kind if mode == MODES[0] else "", number, mode, *(f"{values[k]:.3f}" for k in KS))
            )
    first = table(
        f"Evidence recall: {len(conversations)} conversations, {turns} turns, "
        f"{sum(counts.values())} questions (memory.api.memory_search, k=10)",
        header,
        rows,
    )
    stage_names = ("verbatim", "+ summaries", "+ memories")
    second_rows = [
        (
            f"{int(share * 100)}%",
            f"{mean(compressed['ratios'][share]):.3f}",
            *(f"{mean(compressed['kept'][(share, stage)]):.3f}" for stage in stage_names),
        )
        for share in BUDGETS
    ]
    second = table(
        "Compression: share of evidence turns still in the context "
        "(context_compress, extractive summaries, question as the latest message)",
        ("budget", "tokens after/before", *stage_names),
        second_rows,
    )
    out = [first, "", second]
    if notes:
        out += ["", "Hybrid misses at k=10:", *notes]
    out.append(f"\n{seconds:.0f}s in all; database {DATABASE} dropped")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--details", action="store_true", help="list hybrid's misses")
    parser.add_argument(
        "--no-compression", action="store_true", help="print only the retrieval table"
    )
    args = parser.parse_args()

    socket_dir, held = pgserver.attach()
    pgserver.recreate_database(socket_dir, DATABASE)
    for key in [key for key in os.environ if key.startswith(("LUMINA_", "CELERY_"))]:
        if key != "LUMINA_DATA_DIR":
            del os.environ[key]
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        DATABASE_URL=pgserver.database_url(socket_dir, DATABASE),
        LUMINA_EVENT_TRANSPORT="inprocess",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    started = time.monotonic()
    try:
        call_command("migrate", interactive=False, verbosity=0)
        conversations = load()
        actors = setup(conversations)
        recall, notes = retrieval(conversations, actors, details=args.details)
        compressed = (
            {"kept": defaultdict(list), "ratios": defaultdict(list)}
            if args.no_compression
            else compression(conversations, actors)
        )
    finally:
        from lumina.providers.services.usage import usage_writer_stop

        usage_writer_stop(flush=True)  # the embeddings' usage, while the database exists
        connections.close_all()
        pgserver.recreate_database(socket_dir, DATABASE, create=False)
        if held:
            pgserver.release()
    print(report(conversations, recall, compressed, notes, time.monotonic() - started))


if __name__ == "__main__":
    main()
