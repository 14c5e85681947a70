"""gunicorn's settings for production: `gunicorn -c config/gunicorn.conf.py config.wsgi:application`.

A request spends most of its time waiting for the CRM (100-500 ms a call for a real one)
and a few milliseconds of CPU, so each worker keeps many requests in flight and the
workers, one per core, share the CPU. On PostgreSQL the workers are gevent's: one OS
thread per worker, a greenlet per connection, every socket wait (client, PostgreSQL
through psycopg, CRM through requests) a switch to another greenlet; on SQLite, whose
calls would block a gevent worker whole, they are gthread's (WEB_THREADS threads each).
Measured against each other and the peer in README ("Serving in production").

Every value can be set from the environment (see README, Configuration); gunicorn's own
command-line flags still win over this file.
"""

import os

import environ

# The database decides the default worker class, so this file reads the same optional
# `.env` as config/settings.py (values already in the environment win there too).
environ.Env.read_env(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".env"))

_workers = int(os.environ.get("WEB_WORKERS", "2"))
# gthread only: 2 x 40 threads, each with its persistent database connection, stay under
# PostgreSQL's default max_connections (100); with DB_POOL_MAX_SIZE, more threads can share
# fewer.
_threads = int(os.environ.get("WEB_THREADS", "40"))

_database = environ.Env.db_url_config(os.environ.get("DATABASE_URL") or "sqlite://")
_on_postgres = _database.get("ENGINE") == "django.db.backends.postgresql"
worker_class = os.environ.get("WEB_WORKER_CLASS", "").strip() or ("gevent" if _on_postgres else "gthread")
if worker_class not in ("gevent", "gthread"):
    raise RuntimeError(f"WEB_WORKER_CLASS must be gevent or gthread, not {worker_class!r}")
# The workers' settings read it: under gevent they take database connections from a pool
# and give them back before every CRM call (config/settings.py).
os.environ["WEB_WORKER_CLASS"] = worker_class

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = _workers
threads = _threads
# Keep-alive connections stay with the worker that accepted them: allow a worker to hold
# every connection a client pool might open, whatever the split between workers. Under
# gevent this also bounds the requests one worker serves at once.
worker_connections = int(os.environ.get("WEB_MAX_CONNECTIONS", "1000"))
keepalive = int(os.environ.get("WEB_KEEPALIVE_SECONDS", "5"))
# A request is bounded by its CRM calls (each OUTBOUND_TIMEOUT_SECONDS) and, when it waits
# for another request's placeholder, by that wait: a worker silent for longer is stuck.
timeout = int(os.environ.get("WEB_TIMEOUT_SECONDS", "120"))
graceful_timeout = 30
# No access log (credentials can travel in query strings; see README, Logging); errors to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")
# gunicorn 27 opens a control socket under the home folder unless told not to.
control_socket_disable = True


# Objects allocated (net) between two collections of the youngest generation: Python's
# default is 700. Hundreds of requests in flight keep thousands of young objects alive,
# so at 700 the collector kept walking them: 10 % of a gevent worker's CPU at c=256. At
# 7000, our CPU per flow fell 5-7 % in three same-run comparisons (bench/run.py
# --sweep-env, CRM 100 ms, c=256) with p99 unchanged; 20000 saved a little more but
# lengthened the pauses (GET /contact's p99 +140 ms).
GC_THRESHOLD = (7000, 10, 10)


def post_worker_init(worker: object) -> None:
    """Once a worker has loaded the app: load the URLconf (and with it the views), then
    move everything alive into the garbage collector's permanent generation, so its full
    collections stop walking Django's and the app's own objects, and collect the young
    generation less often (GC_THRESHOLD). A gevent worker serves all its requests on one
    thread, and a collection stalls them all: frozen, POST /contact's p95 fell from 160 to
    143 ms (bench/run.py, CRM 100 ms, c=32, 2 passes)."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
