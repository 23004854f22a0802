"""Log redaction: a handler filter that scrubs tokens, codes, verifiers and secrets from every record.

Attached to handlers (not loggers) because logger filters do not see records from child loggers; it merges
`record.getMessage()` first so secrets passed as `%s` arguments are caught too (oauth-client-rules.md §7).
Third-party loggers (httpx logs full URLs at INFO) are covered by the same handler filter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_KEYS = (
    r"access_token|refresh_token|id_token|client_secret|code_verifier|code|token|password|apiSecret|api_secret|"
    r"secret|websocket_token|apiKey"
)
# key=value (query strings, forms), "key": "value" (JSON), key: value
_KV = re.compile(rf"""(?P<k>\b(?:{_KEYS})\b)(?P<sep>["']?\s*[:=]\s*["']?)(?P<v>[^"'&\s,;}}\]]+)""", re.IGNORECASE)
_AUTH = re.compile(r"(?P<k>\b(?:Bearer|Basic|DPoP)\s+)(?P<v>[A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE)
_HDR = re.compile(r"(?P<k>X-TXC-(?:APIKEY|PAYLOAD|SIGNATURE)['\"]?\s*[:=,]\s*['\"]?)(?P<v>[^'\"\s,}]+)", re.IGNORECASE)
# The WebSocket `authorize` request carries its token as a bare positional parameter: {"method":"authorize",
# "params":["<token>","public"]}. websockets logs each frame at DEBUG elided in the middle ("abcdefg...vwxyz012345"),
# so both the head form and a tail left after the "..." are masked.
_WS_AUTH = re.compile(r'(?P<k>"method"\s*:\s*"authorize"\s*,\s*"params"\s*:\s*\[\s*\\?")(?P<v>[^"\\]*)')
_WS_AUTH_TAIL = re.compile(r'(?P<k>\.\.\.)(?P<v>[^"\s\\]+)(?=\\?"\s*,\s*\\?"public\\?"\s*\])')
MASK = "***"


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """Text with secret-looking values masked; `extra` are exact secret values known to the caller."""
    for secret in extra:
        if secret and len(secret) >= 6:
            text = text.replace(secret, MASK)
    text = _AUTH.sub(lambda m: m.group("k") + MASK, text)
    text = _HDR.sub(lambda m: m.group("k") + MASK, text)
    text = _WS_AUTH.sub(lambda m: m.group("k") + MASK, text)
    text = _WS_AUTH_TAIL.sub(lambda m: m.group("k") + MASK, text)
    return _KV.sub(lambda m: m.group("k") + m.group("sep") + MASK, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and formatted exception) with secrets masked; never drops a record."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._known: set[str] = {s for s in known_secrets if s}
        self._fmt = logging.Formatter()

    def add_secret(self, value: str) -> None:
        if value:
            self._known.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = scrub(message, self._known)
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(self._fmt.formatException(record.exc_info), self._known)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self._known)
        return True


def install(
    handler: logging.Handler | None = None, known_secrets: Iterable[str] = (), *, pin_noisy: bool = True
) -> RedactingFilter:
    """Attach a RedactingFilter to `handler`, or to every handler of the root logger; pins noisy loggers."""
    f = RedactingFilter(known_secrets)
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for h in handlers:
        h.addFilter(f)
    for noisy in ("httpx", "httpcore", "oauthlib", "requests_oauthlib") if pin_noisy else ():
        lg = logging.getLogger(noisy)
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)
    return f
