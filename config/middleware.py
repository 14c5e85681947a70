"""CORS for App Connect's client, which calls the API from another origin.

Mirrors the peer's `cors()` set-up: any origin, the methods the API uses, and the
refreshed-JWT header exposed to scripts. The admin is same-origin only and gets nothing.
django-cors-headers was considered; its last release is more than a year old.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.handlers import is_api_path

ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE"
EXPOSED_HEADERS = "x-refreshed-jwt-token"
# A comma-separated list of header names (RFC 9110 tokens), as a browser sends it.
_HEADER_NAMES = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


class ApiCorsMiddleware:
    """Adds CORS headers to API responses and answers preflight requests."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        if request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            requested = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").strip()
            # Echoed back only when it is a list of header names: anything else is no
            # browser's, and could carry what a response header must not.
            if requested and len(requested) <= 2000 and _HEADER_NAMES.fullmatch(requested):
                response["Access-Control-Allow-Headers"] = requested
            response["Vary"] = "Access-Control-Request-Headers"
            response["Content-Length"] = "0"
        else:
            response = self.get_response(request)
            response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response["Access-Control-Allow-Origin"] = "*"
        return response
