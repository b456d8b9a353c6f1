"""Which phrases of a question name a period, and which only look like one."""

from __future__ import annotations

import datetime as dt

import pytest

from lumina.memory.services.timeparse import time_windows

NOW = dt.datetime(2026, 2, 2, 10, tzinfo=dt.UTC)


def periods(question: str) -> list[tuple[str, str | None, str | None]]:
    windows, _ = time_windows(question, now=NOW)
    return [
        (
            window.phrase,
            window.start.date().isoformat() if window.start else None,
            window.end.date().isoformat() if window.end else None,
        )
        for window in windows
    ]


@pytest.mark.parametrize(
    "question",
    [
        "When was June's bike stolen?",
        "Did June call Walter?",
        "Did Jan like the film?",
        "May I ask where Sam lives?",
        "What did August say about the boat?",
    ],
)
def test_a_month_s_name_without_a_date_around_it_is_a_name(question):
    assert periods(question) == []


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did I do in June?", [("June", "2025-06-01", "2025-07-01")]),
        ("What did we do last June?", [("last June", "2025-06-01", "2025-07-01")]),
        ("What happened on June 5?", [("June 5", "2025-06-05", "2025-06-06")]),
        ("How was June 2024?", [("June 2024", "2024-06-01", "2024-07-01")]),
        ("What did Sam say in Jan?", [("Jan", "2026-01-01", "2026-02-01")]),
        ("Did June visit in May?", [("May", "2025-05-01", "2025-06-01")]),
        ("What did we plan for early March?", [("March", "2025-03-01", "2025-04-01")]),
    ],
)
def test_a_month_with_a_date_around_it_is_a_period(question, expected):
    assert periods(question) == expected


@pytest.mark.parametrize(
    "question",
    [
        "How long after the move did Sam start the new job?",
        "How many weeks after her last shift did Lucía start in Prescott?",
        "How soon after March 2023 did Sam leave?",
        "How much later than the wedding, or how long before the trip, did they meet?",
    ],
)
def test_a_question_about_the_time_between_two_events_bounds_no_period(question):
    windows, remaining = time_windows(question, now=NOW)
    assert windows == []
    assert remaining == question  # both events' words still count


def test_before_and_after_still_bound_a_period_outside_a_duration_question():
    windows, _ = time_windows("What did Sam do after the move?", now=NOW)
    [window] = windows
    assert (window.kind, window.anchor) == ("after", "move")
    [dated] = time_windows("Where did Sam live before June 2025?", now=NOW)[0]
    assert (dated.kind, dated.start, dated.end) == (
        "before",
        None,
        dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
    )
