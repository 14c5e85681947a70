"""The API's one parser: strict JSON, refusing whatever the database or the client could not hold.

On top of JSON's grammar (RFC 8259), a body is refused (400) when it is not UTF-8, holds a
NUL character or a lone surrogate anywhere (PostgreSQL cannot store either, and neither
is text), a number a 64-bit float cannot hold (NaN, Infinity, 1e400, a 400-digit
integer: JavaScript's JSON.parse, the client's, makes Infinity of the last two), a key twice in
one object (which of the two counts differs between parsers), or nesting deeper than
`MAX_DEPTH` levels (Python's json gives up past about a thousand with a RecursionError).
The body's size is bounded by Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

# DRF's own wording for NUL and surrogate characters in strings.
NUL_MESSAGE = "Null characters are not allowed."
SURROGATE_MESSAGE = "Surrogate characters are not allowed."
# Deepest nesting of arrays and objects in a body; App Connect's go about 6 deep.
MAX_DEPTH = 32

# "\u0000" preceded by an even number of backslashes (an odd number escapes the backslash).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# A surrogate's escape (\uD800-\uDFFF); a lone one only shows after parsing.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(Exception):
    """Raised by the decoding hooks; becomes a 400 naming the body."""


def _integer(text: str) -> int:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise _Refused("Numbers must fit in a 64-bit float.") from None
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("Numbers must fit in a 64-bit float.")
    return value


def _constant(name: str) -> None:
    raise _Refused(f"{name} is not a JSON number.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Refused("A key appears twice in one object.")
    return obj


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` levels in `data`."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
    return False


def _has_surrogate(data: Any) -> bool:
    """Whether any key or string in `data` holds a surrogate code point."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _declares_utf8(media_type: str | None) -> bool:
    """Whether the content type declares UTF-8 or no charset at all (JSON is UTF-8)."""
    _, params = parse_header_parameters(media_type or "")
    charset = params.get("charset")
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


class NulFreeJSONParser(JSONParser):
    """Strict UTF-8 JSON (see the module docstring); anything else is a 400 naming the body."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if not _declares_utf8(media_type):
            raise ValidationError({"body": ["Send the body as UTF-8 JSON."]})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig()
        if b"\\u0000" in body and _ESCAPED_NUL.search(body):  # the regex only where it may match
            raise ValidationError({"body": [NUL_MESSAGE]})
        try:
            data = json.loads(
                body.decode("utf-8"),
                object_pairs_hook=_object,
                parse_int=_integer,
                parse_float=_float,
                parse_constant=_constant,
            )
        except _Refused as exc:
            raise ValidationError({"body": [str(exc)]}) from exc
        except RecursionError as exc:
            raise ValidationError({"body": [f"Nested deeper than {MAX_DEPTH} levels."]}) from exc
        except UnicodeDecodeError as exc:
            raise ParseError("The body is not UTF-8 text.") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        # Counting brackets is cheap, and no body with fewer can nest deeper.
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth_exceeds(data, MAX_DEPTH):
            raise ValidationError({"body": [f"Nested deeper than {MAX_DEPTH} levels."]})
        if _ESCAPED_SURROGATE.search(body) and _has_surrogate(data):
            raise ValidationError({"body": [SURROGATE_MESSAGE]})
        return data
