"""Browser tests: Playwright driving Debian's Chromium (headless) against the live server.

pytest-playwright's browser fixtures are session-scoped; here they live for one test only,
started after the test's database is set up and stopped before it is flushed. Playwright's
sync API keeps an asyncio loop running in the main thread while it is started, and Django
refuses ORM calls from a thread with a running loop (and keeps other connections there):
only while the browser runs is that check switched off (DJANGO_ALLOW_ASYNC_UNSAFE), and the
connections opened meanwhile are closed before the loop stops. Screenshots go to
test-output/screenshots/ for reviewers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connections
from playwright.sync_api import Browser, BrowserType, Page, Playwright, sync_playwright

from tests.logs.conftest import PASSWORD, history  # noqa: F401 - fixture reused here

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"


@pytest.fixture
def auditor(transactional_db: None) -> User:
    """A staff user in the `Auditors` group, with the permissions the migration gives it.

    A transactional test starts from a flushed database when another one ran before it, so
    the group the migration created may be gone: it is made again from the migration's list.
    """
    viewable = import_module("logs.migrations.0003_auditors_group").VIEWABLE
    permissions = [
        Permission.objects.get(content_type__app_label=app_label, codename=f"view_{model}")
        for app_label, model in viewable
    ]
    group, _ = Group.objects.get_or_create(name="Auditors")
    group.permissions.set(permissions)
    user = User.objects.create_user("audrey", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def playwright(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does, as root)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    driver = sync_playwright().start()
    yield driver
    connections.close_all()  # those opened while the driver's loop ran
    driver.stop()


@pytest.fixture
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": str(CHROMIUM), "headless": True, "args": CHROMIUM_FLAGS}


@pytest.fixture
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1920, "height": 1080}, "accept_downloads": True, "locale": "en-US"}


@pytest.fixture
def shoot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`shoot("step")` saves a full-page screenshot as test-output/screenshots/<test>-NN-step.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.originalname.removeprefix("test_")
    taken: list[Path] = []

    def _shoot(step: str) -> Path:
        path = SCREENSHOTS / f"{prefix}-{len(taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return _shoot
