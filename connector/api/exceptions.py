"""The API's exception handler: turns every expected failure into App Connect's response shape."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from connector.exceptions import ApplicationError, DatabaseUnavailable, InvalidInput


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"logInfo.from.phoneNumber": ["..."]}."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            if key == "non_field_errors":
                flat.update(_flatten(value, prefix or "body"))
                continue
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "body": [str(item) for item in detail]}
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "body": [str(detail)]}


def as_application_error(exc: Exception) -> ApplicationError | None:
    """The `ApplicationError` standing for `exc`, or None for errors we leave to DRF."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, drf_exceptions.ValidationError):
        return InvalidInput(_flatten(exc.detail))
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidInput({"body": [f"Malformed JSON: {exc.detail}"]})
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return InvalidInput({"body": ["Send the body as JSON (Content-Type: application/json)."]})
    if isinstance(exc, DjangoValidationError):
        return InvalidInput(_flatten(exc.message_dict if hasattr(exc, "error_dict") else exc.messages))
    if isinstance(exc, RequestDataTooBig):
        # A 400 like any other bad body: App Connect's OpenAPI documents no 413.
        return InvalidInput(
            {"body": [f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."]}
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The connection failed (the database restarted, dropped it, or the pool had none
        # free); a programming error such as an IntegrityError stays a 500.
        return DatabaseUnavailable()
    if isinstance(exc, SuspiciousOperation):
        # Django's refusals of a malformed request (a Host not in ALLOWED_HOSTS, too many
        # query fields); their messages quote the request, so they are not repeated.
        return InvalidInput({"request": ["The request is malformed."]})
    return None


def error_response(error: ApplicationError) -> HttpResponse:
    """The response for `error`: its text as text/plain, or its JSON body."""
    body = error.body()
    if isinstance(body, str):
        return HttpResponse(body, status=error.status_code, content_type="text/plain; charset=utf-8")
    return Response(body, status=error.status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's EXCEPTION_HANDLER: the one place error payloads are built."""
    error = as_application_error(exc)
    if error is not None:
        return error_response(error)
    return drf_exception_handler(exc, context)
