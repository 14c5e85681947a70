"""The API's one renderer: compact JSON in which no input can read as markup."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

# `<`, `>` and `&` only ever occur inside JSON strings, where their \u escapes mean the
# same text to every JSON parser (the client's JSON.parse included).
_MARKUP_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


class MarkupSafeJSONRenderer(JSONRenderer):
    """DRF's JSON, with `<`, `>` and `&` written as \\u escapes.

    Answers echo some input (the peer's "No contact found with name <name>", an
    unparseable phone number, a field named in a validation error); this way no answer
    ever carries markup a browser or a log viewer could act on.
    """

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        rendered = super().render(data, accepted_media_type, renderer_context)
        for raw, escaped in _MARKUP_ESCAPES:
            if raw in rendered:
                rendered = rendered.replace(raw, escaped)
        return rendered
