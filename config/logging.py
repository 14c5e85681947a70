"""Logging filter that keeps credentials out of log output."""

import logging
import re

# Query parameters and headers that carry credentials in App Connect's API.
_CREDENTIAL = re.compile(
    r"(?i)((?:jwtToken|rcAccessToken|apiKey|access_token|refresh_token|assertion|verificationToken)=)[^&\s\"']+"
    r"|(Bearer\s+)[A-Za-z0-9._~+/=-]+"
)


def redact(text: str) -> str:
    """Replace the value of every credential-bearing parameter in `text` with `***`."""
    return _CREDENTIAL.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class RedactCredentialsFilter(logging.Filter):
    """Rewrites each record's message so no JWT, API key or RingCentral token is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True
