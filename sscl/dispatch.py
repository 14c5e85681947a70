"""How server-side logging's queued work runs: Celery with a broker in production, a small
thread pool in the embedded default, inline in the tests (`sscl.conf`).

Nothing is lost if queued work never runs: every step's state is in the database first
(the stored delivery, the call's row with its next attempt), and the sweep
(`sscl.services.sscl_sweep`, run by Celery beat or the embedded sweeper thread) sends
again whatever is due and not held.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, transaction

from sscl.conf import conf

logger = logging.getLogger(__name__)

EMBEDDED_THREADS = 4
SWEEP_EVERY_SECONDS = 2.0

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def dispatch(task_name: str, *args: Any, countdown: float = 0.0) -> None:
    """Queue the task `task_name` (see sscl.tasks) once the current transaction commits.

    With a countdown, the embedded and inline modes leave the work to the sweep, which
    finds it due by its `next_attempt_at`; Celery holds it for the countdown.
    """
    transaction.on_commit(lambda: _send(task_name, args, countdown))


def _send(task_name: str, args: tuple[Any, ...], countdown: float) -> None:
    mode = conf().dispatch
    if mode == "celery":
        from config.celery import app

        app.send_task(task_name, args=args, countdown=countdown or None)
    elif mode == "inline":
        if countdown <= 0:
            run(task_name, *args)
    else:
        _embedded_pool().submit(_run_in_thread, task_name, args, countdown)


def run(task_name: str, *args: Any) -> Any:
    """Run one task in this thread, as a worker would."""
    from config.celery import app
    from sscl import tasks  # noqa: F401 - registers the tasks

    return app.tasks[task_name](*args)


def _run_in_thread(task_name: str, args: tuple[Any, ...], countdown: float) -> None:
    if countdown > 0:
        return  # the sweeper sends it again when it is due
    close_old_connections()
    try:
        run(task_name, *args)
    except Exception:
        logger.exception("Server-side logging task %s%r failed; the sweep sends it again", task_name, args)
    finally:
        close_old_connections()


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=EMBEDDED_THREADS, thread_name_prefix="sscl")
            threading.Thread(target=_sweeper, name="sscl-sweeper", daemon=True).start()
        return _pool


def _sweeper() -> None:
    """The embedded default's beat: send due work again every few seconds."""
    while True:
        time.sleep(SWEEP_EVERY_SECONDS)
        close_old_connections()
        try:
            run("sscl.sweep")
        except Exception:
            logger.exception("Server-side logging sweep failed")
        finally:
            close_old_connections()
