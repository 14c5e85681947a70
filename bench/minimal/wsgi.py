"""Settings, views and WSGI application of the minimal reference server, in one module.

    DATABASE_URL=... PYTHONPATH=bench gunicorn -c config/gunicorn.conf.py minimal.wsgi:application
    DATABASE_URL=... python bench/minimal/wsgi.py migrate           # create its tables

It is served like our server, with production's gunicorn settings (gthread, WEB_WORKERS x
WEB_THREADS), so the two differ only in what the product does per request.

Each step is what ../shared/perf.md measured as the minimal Django: the JWT checked with
PyJWT in the view, then one ORM statement (GET /contact: a SELECT; POST /contact: an
INSERT; POST /callLog: a SELECT and an INSERT in one transaction). The database options
are our server's: server-side binding and prepared statements; persistent connections,
or with DB_POOL_MAX_SIZE=N (PostgreSQL) a psycopg pool of N connections per process.

With BENCH_CRM_DELAY_MS=N each step first waits N ms, once, as our server waits for the
one CRM call of each route of this flow (findContact, createContact, createCallLog); a
pooled connection goes back to the pool before the wait, as ours does (connector/db.py).
Then it is the ceiling of the stack with that CRM: threads, the GIL, the pool.

BENCH_EXTRA_WORK adds work to each step before its CRM wait, to see what our server's
own work costs on this stack (`bench/run.py --reference-env`), with G/C/L for
GET /contact, POST /contact and POST /callLog: `cpu:G/C/L` burns that many milliseconds
of CPU, `sql:G/C/L` sends that many more `SELECT 1` round trips, `write:G/C/L` that many
committed INSERTs; the CPU comes first in one piece, or with `+sliced` in equal pieces
before and between the round trips (as ours does). E.g. `cpu:0.8/1.6/1.6+sql:0/2/0`;
`none` (the default) adds nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import django
import environ
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JWT_SECRET = os.environ.get("APP_SERVER_SECRET_KEY") or secrets.token_urlsafe(48)

CRM_DELAY_S = float(os.environ.get("BENCH_CRM_DELAY_MS") or 0) / 1000
POOL_MAX_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE") or 0)


def _extra_work(text: str) -> tuple[dict[str, tuple[float, int, int]], bool]:
    """BENCH_EXTRA_WORK -> ({step: (CPU seconds, SELECT 1s, INSERTs)}, sliced)."""
    values = {"cpu": ["0"] * 3, "sql": ["0"] * 3, "write": ["0"] * 3}
    sliced = False
    for part in [] if text == "none" else text.split("+"):
        kind, _, given = part.partition(":")
        if part == "sliced":
            sliced = True
        elif kind in values and len(given.split("/")) == 3:
            values[kind] = given.split("/")
        else:
            sys.exit(f"BENCH_EXTRA_WORK: expected cpu:, sql: or write:G/C/L, or sliced, got {part!r}")
    steps = ("GET /contact", "POST /contact", "POST /callLog")
    work = {
        step: (float(values["cpu"][i]) / 1000, int(values["sql"][i]), int(values["write"][i]))
        for i, step in enumerate(steps)
    }
    return work, sliced


EXTRA_WORK, EXTRA_SLICED = _extra_work(os.environ.get("BENCH_EXTRA_WORK", "none"))

_db = environ.Env().db_url_config(os.environ["DATABASE_URL"])
_db["CONN_MAX_AGE"] = 600
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
    if POOL_MAX_SIZE:  # as config/settings.py does
        _db["OPTIONS"]["pool"] = {
            "min_size": min(2, POOL_MAX_SIZE),
            "max_size": POOL_MAX_SIZE,
            "timeout": 10.0,
        }
        _db["CONN_MAX_AGE"] = 0
        _db["CONN_HEALTH_CHECKS"] = True
else:
    _db["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                      "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}  # fmt: skip

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_urlsafe(48),
    ALLOWED_HOSTS=["127.0.0.1"],
    INSTALLED_APPS=["minimal"],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    DATABASES={"default": _db},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

import jwt  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from minimal.models import CallLog, Contact, Mark  # noqa: E402


def _user(request) -> dict | None:
    try:
        return jwt.decode(request.GET.get("jwtToken", ""), JWT_SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return None


def _burn(cpu_s: float) -> None:
    until = time.thread_time() + cpu_s
    while time.thread_time() < until:
        pass


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _extra(step: str) -> None:
    """This step's BENCH_EXTRA_WORK: CPU burnt on this thread and the round trips."""
    cpu_s, selects, writes = EXTRA_WORK[step]
    trips = [_select_one] * selects + [lambda: Mark.objects.create(step=step)] * writes
    if not EXTRA_SLICED:
        _burn(cpu_s)
        for trip in trips:
            trip()
        return
    piece = cpu_s / (len(trips) + 1)
    _burn(piece)
    for trip in trips:
        trip()
        _burn(piece)


def _crm_wait() -> None:
    """The CRM's round trip of this step: the pooled connection goes back first."""
    if CRM_DELAY_S > 0:
        if POOL_MAX_SIZE and connection.connection is not None:
            connection.close()
        time.sleep(CRM_DELAY_S)


def _unauthorized() -> HttpResponse:
    return HttpResponse("Please go to Settings and authorize CRM platform", status=400)


def is_alive(request):
    return HttpResponse("OK", content_type="text/plain")


@csrf_exempt
def api_key_login(request):
    body = json.loads(request.body)
    claims = {"id": "1-minimal", "platform": body.get("platform", "")}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return JsonResponse({"jwtToken": token, "name": "minimal", "returnMessage": {"messageType": "success"}})


@csrf_exempt
def contact(request):
    if _user(request) is None:
        return _unauthorized()
    _extra(f"{request.method} /contact")
    _crm_wait()
    if request.method == "GET":
        phone = request.GET.get("phoneNumber", "").strip()
        found = list(Contact.objects.filter(phone_number=f"+{phone.lstrip('+')}").values("id", "name")[:20])
        return JsonResponse({"successful": True, "contact": [{**c, "id": str(c["id"])} for c in found]})
    body = json.loads(request.body)
    new = Contact.objects.create(
        phone_number=body["phoneNumber"], name=body["newContactName"], contact_type=body["newContactType"]
    )
    return JsonResponse({"successful": True, "contact": {"id": str(new.id), "name": new.name}})


@csrf_exempt
def call_log(request):
    if _user(request) is None:
        return _unauthorized()
    body = json.loads(request.body)
    info = body["logInfo"]
    _extra("POST /callLog")
    _crm_wait()
    with transaction.atomic():
        if CallLog.objects.filter(session_id=info["sessionId"]).exists():
            return JsonResponse({"successful": False, "returnMessage": {"message": "Existing log"}})
        log = CallLog.objects.create(
            session_id=info["sessionId"],
            contact_id=str(body["contactId"]),
            subject=info.get("customSubject", ""),
            note=body.get("note", ""),
        )
    return JsonResponse({"successful": True, "logId": str(log.id)})


urlpatterns = [
    path("isAlive", is_alive),
    path("apiKeyLogin", api_key_login),
    path("contact", contact),
    path("callLog", call_log),
]

application = WSGIHandler()

if __name__ == "__main__":
    from django.core.management import call_command

    if sys.argv[1:] != ["migrate"]:
        sys.exit(__doc__)
    call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
