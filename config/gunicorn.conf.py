"""gunicorn's settings for production: `gunicorn -c config/gunicorn.conf.py config.wsgi:application`.

Threads, not processes, carry the concurrency. A request spends most of its time waiting
for the CRM (100-500 ms a call for a real one) and a few milliseconds of CPU, so each
worker runs many threads (gthread) and the CRM round trips overlap; the workers, one per
core, share the CPU. Measured against the alternatives in README ("Serving").

Every value can be set from the environment (see README, Configuration); gunicorn's own
command-line flags still win over this file.
"""

import os

_workers = int(os.environ.get("WEB_WORKERS", "2"))
# 2 x 40 threads, each with its persistent database connection, stay under PostgreSQL's
# default max_connections (100); with DB_POOL_MAX_SIZE, more threads can share fewer.
_threads = int(os.environ.get("WEB_THREADS", "40"))

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = _workers
threads = _threads
# Keep-alive connections stay with the worker that accepted them: allow a worker to hold
# every connection a client pool might open, whatever the split between workers.
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
