"""Two request pipelines: App Connect's API with a short middleware chain, the rest with all.

The API needs neither sessions, CSRF, authentication, messages nor the admin's history
context: it authenticates with its JWT. Skipping those middleware saves a measurable share
of each request (see bench/profile.py), so API paths go to a handler of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test.client import ClientHandler

# Paths served by the full Django stack; everything else is App Connect's API.
FULL_STACK_PREFIXES = ("/admin/", "/api/", "/static/")
API_UNDER_ADMIN = frozenset({"/admin/settings"})


def is_api_path(path: str) -> bool:
    return not path.startswith(FULL_STACK_PREFIXES) or path in API_UNDER_ADMIN


class _ApiMiddlewareMixin:
    """Loads `API_MIDDLEWARE` instead of `MIDDLEWARE`."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)  # type: ignore[misc]
        finally:
            settings.MIDDLEWARE = full


class ApiWSGIHandler(_ApiMiddlewareMixin, WSGIHandler):
    """The WSGI handler of App Connect's API paths."""


class ApiClientHandler(_ApiMiddlewareMixin, ClientHandler):
    """The test client's handler for API paths, so tests run what production runs."""


class PathDispatcher:
    """A WSGI application sending API paths to the lean handler, the rest to Django's."""

    def __init__(self, *, api: Any, full: Any) -> None:
        self.api = api
        self.full = full

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self.api if is_api_path(environ.get("PATH_INFO", "")) else self.full
        return handler(environ, start_response)
