"""Typed WhiteBIT errors: status, WhiteBIT's code, its field messages and the endpoint path.

Never the raw body or any header: bodies of auth endpoints carry tokens and secrets, headers carry keys and
signatures. We parse the documented shapes (docs/whitebit.md §2.2, §2.5, §1.2) into fields and drop the rest.
"""

from __future__ import annotations

import json
from typing import Any

from botkit.retry import parse_retry_after as parse_retry_after  # re-exported: the client's errors read it

# Error-body keys that may hold secrets: their field messages are dropped, not carried.
_SECRET_FIELDS = frozenset(
    {"access_token", "refresh_token", "apiSecret", "client_secret", "code_verifier", "token", "code", "secret"}
)


class WhiteBitError(Exception):
    """An error answer from WhiteBIT (or the sandbox) for one endpoint."""

    def __init__(
        self,
        status: int,
        path: str,
        code: int | None = None,
        message: str | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        self.status = status
        self.path = path
        self.code = code
        self.message = message
        self.errors = errors or {}
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items())
        text = f"HTTP {status} from {path}"
        if code is not None:
            text += f" (code {code})"
        if message:
            text += f": {message}"
        if detail:
            text += f" [{detail}]"
        super().__init__(text)


class WhiteBitAuthError(WhiteBitError):
    """401 / "Unauthorized request.": credentials missing, wrong or expired."""


class WhiteBitForbidden(WhiteBitError):
    """403: the key or token lacks permission for this endpoint. A token refresh cannot fix it."""

    required_scopes: frozenset[str] = frozenset()


class WhiteBitNotFound(WhiteBitError):
    """404."""


class WhiteBitConflict(WhiteBitError):
    """409 (e.g. an API secret that was already retrieved)."""


class WhiteBitLocked(WhiteBitError):
    """423: temporary lock, retry later."""


class WhiteBitValidationError(WhiteBitError):
    """400/422: the request was rejected on its content (precision, balance, fields)."""


class WhiteBitRegionRestricted(WhiteBitError):
    """453: order type or flag not available in this region or listing window."""


class WhiteBitRateLimited(WhiteBitError):
    """429 from the gateway (non-JSON body): a rate limit; back off and retry."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.retry_after = retry_after


class WhiteBitNonceRejected(WhiteBitError):
    """The nonce was refused: WhiteBIT answers HTTP 429 JSON `"Too many requests."` (or a nonce message), §2.3/§2.5.

    Not a rate limit: backing off cannot help. The request was not processed; the client re-syncs its clock with
    the server's and resends once with a fresh nonce."""


class WhiteBitUnavailable(WhiteBitError):
    """5xx: maintenance or internal error."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.retry_after = retry_after


class OutcomeUnknown(WhiteBitError):
    """A non-idempotent request (order creation) may or may not have been executed: it reached the server and
    no answer says what happened. Never resend it blindly; resolve it by looking the order up (clientOrderId)."""


class WhiteBitOutcomeUnknown(WhiteBitUnavailable, OutcomeUnknown):
    """A 5xx (gateway 503, 500, 502, 504) on a non-idempotent endpoint: the exchange may have placed the order."""


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    if isinstance(value, str):
        return [value]
    return []


def parse_error_body(body: bytes) -> tuple[int | None, str | None, dict[str, list[str]]]:
    """(code, message, field messages) from any documented WhiteBIT error shape; secret-bearing fields dropped."""
    try:
        doc = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None, None, {}
    if not isinstance(doc, dict):
        return None, None, {}
    code = doc.get("code") if isinstance(doc.get("code"), int) else None
    message: str | None = doc["message"] if isinstance(doc.get("message"), str) else None
    fields: dict[str, list[str]] = {}
    raw_errors = doc.get("errors")
    if isinstance(raw_errors, dict):
        fields.update({str(k): _messages(v) for k, v in raw_errors.items()})
    data = doc.get("data")
    if isinstance(data, dict):  # OAuth shapes: {"data":{"message":[...]}} / {"data":{"token":["Invalid token."]}}
        for k, v in data.items():
            if k == "message":
                msgs = _messages(v)
                message = message or (msgs[0] if msgs else None)
            else:
                fields[str(k)] = _messages(v)
    if isinstance(doc.get("error"), list | str):  # 500 {"error":["Internal server error."]}
        msgs = _messages(doc["error"])
        message = message or (msgs[0] if msgs else None)
    if message is None and not fields and not raw_errors and "data" not in doc:
        # flat public 422: {"market":["Market is not available."]}
        fields.update({str(k): _messages(v) for k, v in doc.items() if isinstance(v, list)})
    # A field named like a secret keeps its messages only while they are short prose ("Invalid token."), so a
    # server that echoes the submitted value can never push it into an exception text.
    def prose(m: str) -> bool:
        return len(m) < 40 and (" " in m or m.startswith("validation."))

    safe = {k: v for k, v in fields.items() if k not in _SECRET_FIELDS or all(prose(m) for m in v)}
    return code, message, safe


_NONCE_MESSAGES = ("too many requests", "nonce is more than")


def is_nonce_message(message: str | None) -> bool:
    """WhiteBIT's JSON answers to a nonce outside the window or not above the last one: "Too many requests." (HTTP
    429, code 0) and "Your nonce is more than 5 seconds lesser than the current nonce" (docs/whitebit.md §2.3, §2.5).
    ("Nonce not provided." / "Invalid nonceWindow." are malformed requests: validation errors.)"""
    return message is not None and any(m in message.lower() for m in _NONCE_MESSAGES)


def error_from_response(
    status: int, body: bytes, path: str, retry_after: str | None = None, *, nonce_sent: bool = True
) -> WhiteBitError:
    """The typed error for a non-2xx answer (or a 200 kline with success:false, if the caller passes it).
    `nonce_sent`: the request was HMAC-signed, so a JSON "Too many requests." is a nonce rejection."""
    code, message, fields = parse_error_body(body)
    ra = parse_retry_after(retry_after)
    if nonce_sent and status in (400, 401, 429) and is_nonce_message(message):
        return WhiteBitNonceRejected(status, path, code, message, fields)
    if status == 401:
        return WhiteBitAuthError(status, path, code, message, fields)
    if status == 403:
        return WhiteBitForbidden(status, path, code, message, fields)
    if status == 404:
        return WhiteBitNotFound(status, path, code, message, fields)
    if status == 409:
        return WhiteBitConflict(status, path, code, message, fields)
    if status == 423:
        return WhiteBitLocked(status, path, code, message, fields)
    if status == 429:
        return WhiteBitRateLimited(status, path, code, message, fields, retry_after=ra)
    if status == 453:
        return WhiteBitRegionRestricted(status, path, code, message, fields)
    if status >= 500:
        return WhiteBitUnavailable(status, path, code, message, fields, retry_after=ra)
    if status in (400, 422):
        if code == 10 and message and "unauthorized" in message.lower():
            return WhiteBitAuthError(status, path, code, message, fields)
        return WhiteBitValidationError(status, path, code, message, fields)
    return WhiteBitError(status, path, code, message, fields)
