"""Screenshots of the admin pages, the login page and /api/docs/, for before/after reviews.

Each page is taken at 1400x900 and 1280x900, viewport only (what a user sees on opening
it), as `<out>/<page>-<width>.png`. Two ways to run it:

    # serve a checkout on a throwaway SQLite database, seed it through the API, shoot, stop
    .venv/bin/python scripts/screenshots.py --out docs/screenshots/after
    .venv/bin/python scripts/screenshots.py --checkout /work/wt/before --out docs/screenshots/before

    # a server that is already running (its data as it is; --api-key seeds calls first)
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8000 --user admin \
        --password '<password>' [--api-key '<built-in CRM key>'] --out /tmp/shots

The browser is Debian's Chromium (/usr/bin/chromium) driven by Playwright, as in the
browser tests (tests/e2e/conftest.py). Only loopback addresses are contacted. A page the
checkout does not have (e.g. a report added later) is still shot, showing what the server
answers (a 404, or the admin index it redirects to), and named in the summary at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WIDTHS = (1400, 1280)
HEIGHT = 900
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shot:
    """One page to capture: `path` is tried first, then each of `fallbacks` (a page that
    moved or did not exist yet); `prepare` runs once the page has loaded."""

    name: str
    path: str
    fallbacks: tuple[str, ...] = ()
    prepare: Callable[[Page], None] | None = None
    login: bool = True


def _wait_for_swagger(page: Page) -> None:
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)


def _open_call_log_operation(page: Page) -> None:
    """Expand POST /callLog and show its request body's schema (where the descriptions are)."""
    _wait_for_swagger(page)
    block = page.locator(".opblock-post", has=page.locator('[data-path="/callLog"]')).first
    block.locator(".opblock-summary").first.click()
    schema_tab = block.get_by_role("tab", name="Schema").first
    if schema_tab.count():
        schema_tab.click()
    block.scroll_into_view_if_needed()
    page.mouse.move(0, 0)  # no hover tooltip in the picture
    page.wait_for_timeout(300)


def _show_timeline(page: Page) -> None:
    """Scroll the log's timeline (the event trail below the log's fields) to the top."""
    page.locator(".log-timeline").first.evaluate("e => e.scrollIntoView({block: 'start'})")


PAGES = (
    Shot("login", "/admin/login/", login=False),
    Shot("admin-index", "/admin/"),
    Shot("rules-index", "/admin/rules/"),
    Shot("rules-page", "/admin/rules/rulesetting/page/"),
    Shot("rule-settings", "/admin/rules/rulesetting/"),
    Shot("rule-setting-add", "/admin/rules/rulesetting/add/"),
    Shot("default-placeholder-names", "/admin/rules/placeholdernametemplate/"),
    Shot("call-logs", "/admin/logs/calllog/"),
    Shot("call-log-detail", "{call_log_detail}"),
    Shot("call-log-timeline", "{call_log_detail}", prepare=_show_timeline),
    Shot("dashboard", "/admin/logs/calllog/dashboard/"),
    Shot("placeholder-report", "/admin/rules/placeholdercontact/open-report/"),
    Shot("placeholders", "/admin/rules/placeholdercontact/"),
    Shot("api-docs", "/api/docs/", prepare=_wait_for_swagger, login=False),
    Shot("api-docs-call-log", "/api/docs/", prepare=_open_call_log_operation, login=False),
)


# --- a throwaway server ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    user: str
    password: str
    api_key: str


@contextmanager
def served(checkout: Path) -> Iterator[Server]:
    """Serve `checkout` with runserver on a free loopback port and a fresh SQLite database
    (migrated, with `demo_setup`'s admin and built-in CRM key); everything goes on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="screenshots-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "CACHE_URL": "locmemcache://",
        "CELERY_BROKER_URL": "",
        "DEMO_ADMIN_PASSWORD": password,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    python = str(checkout / ".venv" / "bin" / "python")

    def manage(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py, fixed arguments
            [python, "manage.py", *args], cwd=checkout, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode:
            sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    manage("migrate", "--noinput", "-v0")
    lines = manage("demo_setup", "--url", url).splitlines()
    api_key = next(lines[i + 1].strip() for i, line in enumerate(lines) if "this API key" in line)
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - as above
        [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            try:
                if requests.get(f"{url}/isAlive", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            sys.exit(f"the server did not start; see {workdir / 'server.log'}")
        yield Server(url=url, user="admin", password=password, api_key=api_key)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --- seed data through App Connect's API -------------------------------------------------

AGENT = {"phoneNumber": "+16505550100", "name": "Agent Smith"}


def _call(session: str, number: str | None, name: str, *, minute: int, result: str = "Accepted") -> dict:
    caller: dict[str, str] = {"name": name}
    if number:
        caller["phoneNumber"] = number
    return {
        "sessionId": session,
        "telephonySessionId": f"t-{session}",
        "direction": "Inbound",
        "startTime": f"2026-11-30T09:{minute:02d}:00.000Z",
        "duration": 40 + minute,
        "result": result,
        "from": caller,
        "to": AGENT,
    }


def seed(url: str, api_key: str) -> str:
    """Log a few calls and a message the way App Connect's client would: a known contact,
    an unknown caller under the default rule (skipped), then, with `createPlaceholder`,
    new callers (placeholders), a second call from one of them, a withheld caller, and a
    note added afterwards to the first placeholder call. Returns the session id of the
    call whose page to show."""
    http = requests.Session()

    def send(method: str, path: str, body: dict | None = None) -> dict:
        answer = http.request(method, f"{url}{path}", json=body, timeout=30)
        if answer.status_code >= 400:
            sys.stderr.write(f"  seed: {method} {path} -> {answer.status_code} {answer.text[:200]}\n")
        try:
            return dict(answer.json())
        except ValueError:
            return {}

    token = send("POST", "/apiKeyLogin", {"platform": "builtin", "apiKey": api_key}).get("jwtToken")
    if not token:
        sys.exit("seed: the API key was refused")
    http.headers["Authorization"] = f"Bearer {token}"
    contact = send(
        "POST",
        "/contact",
        {"phoneNumber": "+14155550199", "newContactName": "Jane Caller", "newContactType": "Contact"},
    ).get("contact") or {"id": "1"}
    send(
        "POST",
        "/callLog",
        {
            "contactId": str(contact.get("id", "1")),
            "contactName": "Jane Caller",
            "contactType": "Contact",
            "note": "Asked about pricing",
            "logInfo": _call("seed-1", "+14155550199", "Jane Caller", minute=1),
        },
    )
    send("POST", "/callLog", {"logInfo": _call("seed-2", "+14155550123", "WIRELESS CALLER", minute=5)})
    send("POST", "/user/settings", {"userSettings": {"unknownContactAction": {"value": "createPlaceholder"}}})
    send("POST", "/callLog", {"logInfo": _call("seed-3", "+12125550147", "ROE JANE", minute=10)})
    send("POST", "/callLog", {"logInfo": _call("seed-4", "+12125550147", "ROE JANE", minute=20)})
    send("POST", "/callLog", {"logInfo": _call("seed-5", None, "Anonymous", minute=25, result="Missed")})
    send(
        "POST",
        "/messageLog",
        {
            "contactId": str(contact.get("id", "1")),
            "contactName": "Jane Caller",
            "contactType": "Contact",
            "logInfo": {
                "conversationLogId": "conv-1",
                "correspondents": [{"phoneNumber": "+14155550199"}],
                "messages": [
                    {
                        "id": 7,
                        "type": "SMS",
                        "direction": "Inbound",
                        "subject": "Hi, call me back",
                        "creationTime": "2026-11-30T09:30:00.000Z",
                        "from": {"phoneNumber": "+14155550199"},
                        "to": [{"phoneNumber": AGENT["phoneNumber"]}],
                    }
                ],
            },
        },
    )
    send("POST", "/callLog", {"logInfo": _call("seed-6", "+13125550188", "CHICAGO IL", minute=40)})
    send("PATCH", "/callLog", {"sessionId": "seed-3", "note": "Wants a call back on Monday", "duration": 95})
    return "seed-3"


# --- the browser -------------------------------------------------------------------------


def _log_in(page: Page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    if "/admin/login/" in page.url:
        sys.exit("could not log in to the admin with the given user and password")


def _call_log_detail(page: Page, base: str, session: str | None) -> str:
    """The change page of the call `session` (else of the newest call) as the list links it."""
    for query in ([f"?q={session}"] if session else []) + [""]:
        page.goto(f"{base}/admin/logs/calllog/{query}")
        link = page.locator("#result_list tbody tr a[href*='/change/']").first
        if link.count():
            return str(link.get_attribute("href"))
    return "/admin/logs/calllog/0/change/"


def capture(base: str, user: str, password: str, out: Path, session: str | None) -> list[str]:
    """Shoot every page of PAGES at each width into `out`; returns the pages that answered
    an error (absent from this checkout) or could not be prepared."""
    out.mkdir(parents=True, exist_ok=True)
    problems: set[str] = set()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            for width in WIDTHS:
                anonymous = browser.new_context(viewport={"width": width, "height": HEIGHT}, locale="en-US")
                staff = browser.new_context(viewport={"width": width, "height": HEIGHT}, locale="en-US")
                staff_page = staff.new_page()
                _log_in(staff_page, base, user, password)
                detail = _call_log_detail(staff_page, base, session)
                for shot in PAGES:
                    page = staff_page if shot.login else anonymous.new_page()
                    status = 0
                    for path in (shot.path.format(call_log_detail=detail), *shot.fallbacks):
                        answer = page.goto(f"{base}{path}", wait_until="networkidle")
                        status = answer.status if answer is not None else 0
                        if status < 400 and urlsplit(page.url).path != urlsplit(f"{base}{path}").path:
                            status = 404  # the admin sends an unknown page to its index
                        if status < 400:
                            break
                    if status >= 400:
                        problems.add(f"{shot.name} (HTTP {status})")
                    elif shot.prepare is not None:
                        try:
                            shot.prepare(page)
                        except Exception as exc:  # a page of another version: shoot what is there
                            problems.add(f"{shot.name} ({type(exc).__name__})")
                    page.screenshot(path=str(out / f"{shot.name}-{width}.png"))
                    if not shot.login:
                        page.close()
                anonymous.close()
                staff.close()
        finally:
            browser.close()
    return sorted(problems)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="checkout to serve (default: this one)")
    parser.add_argument("--url", help="an already running server instead of serving --checkout")
    parser.add_argument("--user", default="admin", help="admin user (with --url)")
    parser.add_argument("--password", help="admin password (with --url)")
    parser.add_argument("--api-key", help="built-in CRM key: seed calls first (with --url)")
    args = parser.parse_args()

    if args.url:
        if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
            sys.exit("--url must be a loopback address")
        if not args.password:
            sys.exit("--password is required with --url")
        session = seed(args.url, args.api_key) if args.api_key else None
        problems = capture(args.url.rstrip("/"), args.user, args.password, args.out, session)
    else:
        with served(args.checkout.resolve()) as server:
            session = seed(server.url, server.api_key)
            problems = capture(server.url, server.user, server.password, args.out, session)
    shots = sorted(args.out.glob("*.png"))
    largest = max(p.stat().st_size for p in shots) // 1024
    sys.stdout.write(f"{len(shots)} screenshots in {args.out}, largest {largest} KB\n")
    for problem in problems:
        sys.stdout.write(f"  not as expected: {problem}\n")


if __name__ == "__main__":
    main()
