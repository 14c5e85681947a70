"""bench/run.py's own logic: production's command and defaults, the CRM floor, the bar.

The benchmark itself takes minutes and needs the peer; these tests keep what it judges by
right: servers started with exactly production's command and defaults, the floor a
CRM's wait sets, and issue 12's bar.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench_run():
    """bench/run.py as a module (loaded from its file: putting bench/ on sys.path would
    let bench/profile.py shadow the standard library's `profile`)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_servers_run_productions_command(bench_run) -> None:
    cmd = bench_run.gunicorn_command(bench_run.OUR_APP)
    assert [Path(cmd[0]).name, *cmd[1:]] == [
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        "config.wsgi:application",
    ]
    assert (ROOT / cmd[2]).is_file()


def gunicorn_conf(monkeypatch, **env: str) -> dict:
    """config/gunicorn.conf.py's values with `env` (the file exports WEB_WORKER_CLASS: the
    monkeypatch restores it)."""
    for name in ("WEB_WORKERS", "WEB_THREADS", "WEB_WORKER_CLASS", "DATABASE_URL"):
        monkeypatch.setenv(name, env.get(name, ""))
    monkeypatch.delenv("WEB_WORKERS")
    monkeypatch.delenv("WEB_THREADS")
    return runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))


def test_the_database_chooses_the_worker_class(monkeypatch) -> None:
    postgres = gunicorn_conf(monkeypatch, DATABASE_URL="postgres://postgres@127.0.0.1:5432/x")
    assert postgres["worker_class"] == "gevent"
    assert os.environ["WEB_WORKER_CLASS"] == "gevent"  # what the workers' settings read
    assert gunicorn_conf(monkeypatch, DATABASE_URL="sqlite:////tmp/x.sqlite3")["worker_class"] == "gthread"
    assert gunicorn_conf(monkeypatch)["worker_class"] == "gthread"  # the embedded default, SQLite
    chosen = gunicorn_conf(monkeypatch, DATABASE_URL="postgres://h/x", WEB_WORKER_CLASS="gthread")
    assert chosen["worker_class"] == "gthread"
    with pytest.raises(RuntimeError, match="WEB_WORKER_CLASS must be gevent or gthread, not 'sync'"):
        gunicorn_conf(monkeypatch, WEB_WORKER_CLASS="sync")


def test_workers_and_threads_default_to_the_gunicorn_conf(bench_run, monkeypatch) -> None:
    conf = gunicorn_conf(monkeypatch)
    args = bench_run.parse_args([])
    assert (args.workers, args.threads) == (conf["workers"], conf["threads"])
    assert args.db_pool == bench_run.DEFAULT_DB_POOL == 40  # production's pool under gevent workers
    # The environment of the benchmark's own process does not leak into the defaults.
    monkeypatch.setenv("WEB_THREADS", "3")
    assert bench_run.parse_args([]).threads == conf["threads"]


def test_a_crm_delay_serves_ours_with_the_in_memory_crm(bench_run, capsys) -> None:
    assert bench_run.parse_args([]).crm == "both"
    assert bench_run.parse_args(["--crm-delay-ms", "100"]).crm == "memory"
    with pytest.raises(SystemExit):
        bench_run.parse_args(["--crm-delay-ms", "100", "--crm", "builtin"])
    assert "built-in CRM" in capsys.readouterr().err
    assert bench_run.memory_crm_env(100) == {
        "CRM_PLATFORMS_EXTRA": "memory=slow_crm.SlowMemoryCrmClient",
        "BENCH_CRM_DELAY_MS": "100",
    }
    assert bench_run.memory_crm_env(0) == {"CRM_PLATFORMS_EXTRA": "memory=memory_crm.MemoryCrmClient"}


def test_sweep_env_runs_ours_once_per_value_beside_the_peer(bench_run) -> None:
    args = bench_run.parse_args(["--crm-delay-ms", "100", "--sweep-env", "CONN_HEALTH_CHECKS=true,false"])
    specs = bench_run.our_specs("postgres", args)
    assert [spec.env for spec in specs] == [("CONN_HEALTH_CHECKS", "true"), ("CONN_HEALTH_CHECKS", "false")]
    assert [spec.label(bench_run.sweeping(args)) for spec in specs] == [
        "ours-mem-CONN_HEALTH_CHECKS=true",
        "ours-mem-CONN_HEALTH_CHECKS=false",
    ]
    assert [spec.env for spec in bench_run.our_specs("postgres", bench_run.parse_args([]))] == [None, None]
    for bad in ("CONN_HEALTH_CHECKS", "=1,2", "A="):
        with pytest.raises(SystemExit):
            bench_run.parse_args(["--sweep-env", bad])


def test_reference_env_runs_the_minimal_django_once_per_value(bench_run) -> None:
    assert bench_run.reference_specs("postgres", bench_run.parse_args([])) == []
    args = bench_run.parse_args(
        ["--crm-delay-ms", "100", "--reference", "--reference-env", "BENCH_EXTRA_WORK=none,sql:0/2/0"]
    )
    specs = bench_run.reference_specs("postgres", args)
    assert [(spec.kind, spec.pool, spec.env) for spec in specs] == [
        ("minimal", 40, ("BENCH_EXTRA_WORK", "none")),
        ("minimal", 40, ("BENCH_EXTRA_WORK", "sql:0/2/0")),
    ]
    assert [spec.label(False) for spec in specs] == [
        "minimal-BENCH_EXTRA_WORK=none",
        "minimal-BENCH_EXTRA_WORK=sql:0/2/0",
    ]
    assert [spec.pool for spec in bench_run.reference_specs("sqlite", args)] == [0, 0]
    assert bench_run.our_specs("postgres", args)[0].env is None  # ours runs once, as it is
    with pytest.raises(SystemExit):
        bench_run.parse_args(["--reference-env", "BENCH_EXTRA_WORK=none"])  # without --reference


def test_the_crm_floor_is_c_over_three_round_trips(bench_run) -> None:
    assert bench_run.CRM_CALLS_PER_FLOW == 3
    assert bench_run.crm_floor(32, 100) == pytest.approx(106.67, abs=0.01)
    assert bench_run.crm_floor(256, 100) == pytest.approx(853.33, abs=0.01)
    assert bench_run.crm_floor(32, 0) is None


def result(engine: str, c: int, delay_ms: float, flows: float, *, p50: float = 110, errors: int = 0) -> dict:
    floor = (c / (3 * delay_ms / 1000)) if delay_ms else None
    return {
        "engine": engine,
        "concurrency": c,
        "crm_delay_ms": delay_ms,
        "flows_per_s": flows,
        "crm_floor": floor,
        "floor_ratio": flows / floor if floor else None,
        "errors": errors,
        "endpoints": {r: {"p50_ms": p50} for r in ("GET /contact", "POST /contact", "POST /callLog")},
        "cpu": {"server_ms_per_flow": 10.0},
        "memory": {"peak_rss_mib": 400.0},
    }


def test_bar_a_asks_for_the_floor_the_peer_and_latency(bench_run) -> None:
    peer = result("postgres", 32, 100, 70)
    met = bench_run.evaluate_bar(result("postgres", 32, 100, 92), peer)
    assert (met["clause"], met["met"], met["reasons"]) == ("a", True, [])
    slow = bench_run.evaluate_bar(result("postgres", 32, 100, 90, p50=131, errors=2), peer)
    assert slow["met"] is False
    assert slow["reasons"][0] == "2 errors"
    assert any(r.startswith("ours/floor 0.84 < 0.85") for r in slow["reasons"])
    assert sum("p50 131.0 > 130 ms" in r for r in slow["reasons"]) == 3
    behind_peer = bench_run.evaluate_bar(result("postgres", 32, 100, 95), result("postgres", 32, 100, 80))
    assert behind_peer["reasons"] == ["ours/peer 1.19 < 1.3"]


def test_bar_b_and_c_ask_for_parity_and_sqlite_for_no_errors(bench_run) -> None:
    b = bench_run.evaluate_bar(result("postgres", 256, 100, 150, p50=900), result("postgres", 256, 100, 150))
    assert (b["clause"], b["met"], b["notes"]) == ("b", True, [])
    big = result("postgres", 256, 100, 150)
    big["memory"]["peak_rss_mib"] = 1500.0
    noted = bench_run.evaluate_bar(big, result("postgres", 256, 100, 140))
    assert noted["met"] is True and noted["notes"] == ["peak RSS 1500 MiB above the 1024 MiB goal"]
    for c in (8, 32):
        c_bar = bench_run.evaluate_bar(result("postgres", c, 0, 99), result("postgres", c, 0, 100))
        assert (c_bar["clause"], c_bar["met"]) == ("c", False)
    assert (
        bench_run.evaluate_bar(result("postgres", 1, 0, 99), result("postgres", 1, 0, 100))["judged"] is False
    )
    sqlite = bench_run.evaluate_bar(result("sqlite", 32, 100, 10, errors=1), result("sqlite", 32, 100, 90))
    assert (sqlite["clause"], sqlite["met"], sqlite["reasons"]) == ("sqlite", False, ["1 errors"])
