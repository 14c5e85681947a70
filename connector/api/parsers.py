"""The API's one parser: JSON, refusing NUL characters anywhere in the body."""

from __future__ import annotations

import io
import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

# DRF's own wording for NUL characters in strings (PostgreSQL cannot store them).
NUL_MESSAGE = "Null characters are not allowed."
# "\u0000" preceded by an even number of backslashes (an odd number escapes the backslash).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class NulFreeJSONParser(JSONParser):
    """JSON, but a NUL character anywhere (a key or a value) makes the body invalid (400)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read() if stream is not None else b""
        if _ESCAPED_NUL.search(body):
            raise ValidationError({"body": [NUL_MESSAGE]})
        return super().parse(io.BytesIO(body), media_type, parser_context)
