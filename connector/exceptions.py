"""The one error vocabulary: every failure a route can answer with is an `ApplicationError`.

Each class carries its HTTP status (`status_code`), a stable `default_code`, and builds the
body App Connect's client expects: the peer's plain-text strings for auth failures, JSON
with a `returnMessage` for bad input. `connector.api.exceptions.exception_handler` turns
them into responses; views and services only raise them.
"""

from __future__ import annotations

from typing import Any

# The peer's default auth-failure text (appconnect-api.md §1.2).
AUTHORIZE_CRM_TEXT = "Please go to Settings and authorize CRM platform"


def return_message(
    message: str,
    *,
    message_type: str = "warning",
    ttl: int = 5000,
    details: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build App Connect's `returnMessage` object (appconnect-api.md §1.4)."""
    payload: dict[str, Any] = {"message": message, "messageType": message_type, "ttl": ttl}
    if details is not None:
        payload["details"] = details
    payload.update(extra)
    return payload


def details_text(*texts: str, title: str = "Details", numeric_ids: bool = False) -> list[dict[str, Any]]:
    """A `details` list with one section of text items, ids "1", "2", ... (or 1, 2, ...)."""
    items = [
        {"id": index if numeric_ids else str(index), "type": "text", "text": text}
        for index, text in enumerate(texts, start=1)
    ]
    return [{"title": title, "items": items}]


class ApplicationError(Exception):
    """Base of every error a route answers with.

    `body()` is a `str` (sent as `text/plain`) or a JSON-serialisable `dict`.
    """

    status_code: int = 400
    default_code: str = "error"
    default_message: str = "The request could not be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        super().__init__(self.message)

    def body(self) -> str | dict[str, Any]:
        return {"successful": False, "returnMessage": return_message(self.message)}


class PlainTextError(ApplicationError):
    """A failure the peer answers with a bare string body (e.g. `Missing platform name`)."""

    def body(self) -> str | dict[str, Any]:
        return self.message


class AuthenticationFailed(PlainTextError):
    """No usable App Connect JWT: missing, forged, expired, or naming no user."""

    default_code = "authentication_failed"
    default_message = AUTHORIZE_CRM_TEXT


class AdminValidationFailed(PlainTextError):
    """The RingCentral token does not belong to an account admin."""

    status_code = 403
    default_code = "admin_validation_failed"
    default_message = "Admin validation failed"


class InvalidInput(ApplicationError):
    """The request body or query is malformed; nothing was written and no CRM was called.

    `errors` maps each bad field (dotted path for nested ones) to its messages.
    """

    default_code = "invalid_input"

    def __init__(self, errors: dict[str, list[str]], *, message: str | None = None) -> None:
        self.errors = errors
        fields = ", ".join(sorted(errors)) or "body"
        super().__init__(message or f"Invalid request: please check {fields}.")

    def body(self) -> dict[str, Any]:
        details = [
            {
                "title": "Invalid fields",
                "items": [
                    {"id": field, "type": "text", "text": f"{field}: {' '.join(messages)}"}
                    for field, messages in sorted(self.errors.items())
                ],
            }
        ]
        return {
            "successful": False,
            "returnMessage": return_message(self.message, details=details),
            "errors": self.errors,
        }


class ErrorObject(ApplicationError):
    """A failure the peer answers with JSON `{"error": <message>}` (a thrown exception)."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


class ConnectorNotFound(ErrorObject):
    """No connector is registered for the requested platform."""

    default_code = "connector_not_found"

    def __init__(self, platform: str) -> None:
        super().__init__(f"Connector not found for platform: {platform}")


class LoginRefused(ApplicationError):
    """The CRM refused the credentials at login; carries the connector's `returnMessage`."""

    default_code = "login_refused"

    def __init__(self, message: dict[str, Any]) -> None:
        self.return_message = message
        super().__init__(str(message.get("message") or "Login refused"))

    def body(self) -> dict[str, Any]:
        return {"returnMessage": self.return_message}


class OAuthLoginRefused(LoginRefused):
    """GET /oauth-callback could not connect the user (the CRM named no user, or the
    server has no OAuth app for it): 200 with the `returnMessage`, as the peer answers."""

    status_code = 200
    default_code = "oauth_login_refused"


class ProxyConfigInvalid(ApplicationError):
    """A proxy connector config was refused; `errors` names every fault and where."""

    default_code = "proxy_config_invalid"

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("The proxy connector config was refused: " + "; ".join(errors))


class CrmSessionRevoked(ApplicationError):
    """The CRM revoked the user's session: the client must connect again (HTTP 401)."""

    status_code = 401
    default_code = "CRM_SESSION_REVOKED"
    default_message = "User session expired. Please connect again."

    def body(self) -> dict[str, Any]:
        return {
            "successful": False,
            "returnMessage": return_message(self.message),
            "errorCode": "CRM_SESSION_REVOKED",
        }


class UpstreamUnavailable(ErrorObject):
    """An outside service we depend on (RingCentral's API) failed, refused or timed out.

    HTTP 400 with `{"error": ...}`, as the peer answers and App Connect's OpenAPI documents.
    """

    default_code = "upstream_unavailable"


class DatabaseUnavailable(ApplicationError):
    """Our database could not be reached, or dropped the connection mid-request (HTTP 503).

    Nothing half-written is left behind: a log the request had claimed is finished by the
    client's retry or the recovery task. The client may try again at once.
    """

    status_code = 503
    default_code = "database_unavailable"
    default_message = "The server could not reach its database. Please try again."
