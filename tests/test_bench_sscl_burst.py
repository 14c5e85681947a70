"""bench/sscl_burst.py's own logic: the percentiles, the plan of deliveries, the figures
and the verdict that makes the script fail when a call is lost or doubled.

The burst itself starts gunicorn, a Celery worker and a database and takes a minute;
these tests keep what it judges by right.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def burst():
    """bench/sscl_burst.py as a module (loaded from its file, as tests/test_bench_run.py
    loads bench/run.py; it loads bench/run.py itself the same way)."""
    had_bench_run = "bench_run" in sys.modules
    spec = importlib.util.spec_from_file_location("bench_sscl_burst", ROOT / "bench" / "sscl_burst.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        if not had_bench_run:
            sys.modules.pop("bench_run", None)


def test_percentiles_are_observed_values_by_nearest_rank(burst) -> None:
    times = [float(n) for n in range(1, 1101)]  # 1,100 answers: 1 ms .. 1,100 ms
    assert burst.percentile(times, 50) == 550.0
    assert burst.percentile(times, 99) == 1089.0  # the 1,089th fastest
    assert burst.percentile(times, 100) == 1100.0
    assert burst.percentile(list(reversed(times)), 95) == 1045.0  # order does not matter
    assert burst.percentile([7.5], 99) == 7.5
    assert burst.percentile([], 50) is None
    with pytest.raises(ValueError):
        burst.percentile(times, 101)


def test_the_plan_sends_each_event_once_in_order_and_redeliveries_later(burst) -> None:
    plan = burst.delivery_plan(250, 100, seed=15)
    assert len(plan) == 1100
    distinct = set(plan)
    assert distinct == {(call, event) for call in range(250) for event in range(4)}
    first_seen: dict[tuple[int, int], int] = {}
    for at, item in enumerate(plan):
        first_seen.setdefault(item, at)
    for call in range(250):  # each call's events first sent Setup .. Disconnected
        positions = [first_seen[(call, event)] for event in range(4)]
        assert positions == sorted(positions)
    again = [at for at, item in enumerate(plan) if first_seen[item] != at]
    assert len(again) == 100
    assert len({plan[at] for at in again}) == 100  # 100 distinct events redelivered
    assert burst.delivery_plan(250, 100, seed=15) == plan  # repeatable
    assert burst.delivery_plan(250, 100, seed=16) != plan
    with pytest.raises(ValueError):
        burst.delivery_plan(2, 9, seed=1)


def test_half_the_callers_are_known_and_every_number_differs(burst) -> None:
    numbers = [burst.caller_number(i) for i in range(250)]
    assert len(set(numbers)) == 250
    assert all(n.startswith("+1415555") and len(n) == 12 for n in numbers)
    assert sum(burst.is_known(i) for i in range(250)) == 125


def args(**overrides) -> argparse.Namespace:
    values = dict(calls=250, redeliveries=100, senders=32, concurrency=16, workers=2, threads=40, seed=15)
    return argparse.Namespace(**{**values, **overrides})


def answers(burst, *, statuses=None, redeliveries=100):
    statuses = statuses or [200] * 1100
    return [
        burst.Answer(status, (n + 1) / 1000, redelivery=n >= len(statuses) - redeliveries)
        for n, status in enumerate(statuses)
    ]


def database(**overrides) -> dict:
    values = {
        "events_stored": 1000,
        "events_unprocessed": 0,
        "call_states": {"logged": 250},
        "last_logged_at": datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC),
        "crm_activities": 250,
        "sessions_logged_twice": 0,
        "placeholders_created": 125,
        "call_logs": {"logged": 250},
    }
    return {**values, **overrides}


def figures(burst, *, replies=None, **db):
    return burst.assemble_figures(
        args=args(),
        answers=replies if replies is not None else answers(burst),
        db=database(**db),
        first_delivery_at=datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC),
        send_seconds=9.5,
        drained=True,
        memory={"server (gunicorn)": {"peak_rss_mib": 240.0}, "worker (celery)": {"peak_rss_mib": 120.0}},
    )


def test_a_clean_burst_has_its_figures_and_no_problem(burst) -> None:
    f = figures(burst)
    assert f["problems"] == []
    assert f["deliveries"]["sent"] == 1100
    assert f["deliveries"]["answered_200"] == 1100
    assert f["deliveries"]["redeliveries_sent"] == 100
    assert f["deliveries"]["answer_ms"] == pytest.approx(
        {"p50": 550.0, "p95": 1045.0, "p99": 1089.0, "max": 1100.0}
    )
    # all answers here start at 0 s: none is after the first second
    assert f["deliveries"]["answer_ms_after_first_second"] == {"sent": 0, "p50": None, "p99": None}
    assert f["duplicates_ignored"] == 100  # 1,100 answered 200, 1,000 stored
    assert f["drain_seconds"] == 30.0
    assert (f["calls_expected"], f["events_expected"], f["placeholders_expected"]) == (250, 1000, 125)
    text = burst.format_figures(f)
    assert "p50 550.0, p95 1045.0, p99 1089.0, max 1100.0" in text
    assert "verdict: nothing lost or doubled" in text


def test_anything_lost_or_doubled_is_a_problem(burst) -> None:
    refused = figures(burst, replies=answers(burst, statuses=[200] * 1098 + [500, 0]))
    assert refused["deliveries"]["other_statuses"] == {"500": 1, "no answer (error)": 1}
    assert "2 deliveries not answered 200" in refused["problems"]

    doubled = figures(burst, crm_activities=251, sessions_logged_twice=1)
    assert doubled["problems"] == [
        "251 CRM activities written, expected 250",
        "1 sessions with more than one CRM activity",
    ]

    lost = figures(burst, call_states={"logged": 248, "ended": 2}, crm_activities=248)
    assert lost["problems"][0] == "248 of 250 calls logged (other states: {'ended': 2})"

    redelivery_stored = figures(burst, events_stored=1001)
    assert "1001 events stored, expected 1000" in redelivery_stored["problems"]
    assert "99 duplicates ignored, 100 redeliveries sent" in redelivery_stored["problems"]

    assert figures(burst, placeholders_created=126)["problems"] == [
        "126 placeholder contacts created, expected 125"
    ]
    never_logged = figures(burst, call_states={}, crm_activities=0, last_logged_at=None)
    assert never_logged["drain_seconds"] is None
    assert "verdict: 0 of 250 calls logged" in burst.format_figures(never_logged)


def test_the_database_must_be_a_bench_one(burst) -> None:
    assert burst.parse_args([]).pg_name == "bench_sscl"
    with pytest.raises(SystemExit):
        burst.parse_args(["--pg-name", "test"])
    with pytest.raises(SystemExit):
        burst.parse_args(["--redeliveries", "1001"])


def test_drain_time_runs_to_the_last_call_logged(burst) -> None:
    last = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC) + timedelta(seconds=28, milliseconds=400)
    assert figures(burst, last_logged_at=last)["drain_seconds"] == pytest.approx(28.4)


def test_the_timeline_groups_answers_by_the_second_they_were_sent(burst) -> None:
    replies = [
        burst.Answer(200, 0.9, at=0.1),
        burst.Answer(200, 0.1, at=0.5),
        burst.Answer(200, 0.3, at=0.7),
        burst.Answer(200, 0.02, at=2.2),
    ]
    steady = burst.assemble_figures(
        args=args(calls=1, redeliveries=0),
        answers=replies,
        db=database(),
        first_delivery_at=datetime.now(UTC),
        send_seconds=3.0,
        drained=True,
        memory={},
    )["deliveries"]["answer_ms_after_first_second"]
    assert steady == {"sent": 1, "p50": pytest.approx(20.0), "p99": pytest.approx(20.0)}
    assert burst.timeline(replies) == [
        {"second": 0, "sent": 3, "p50_ms": pytest.approx(300.0), "max_ms": pytest.approx(900.0)},
        {"second": 2, "sent": 1, "p50_ms": pytest.approx(20.0), "max_ms": pytest.approx(20.0)},
    ]
