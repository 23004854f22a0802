"""HMAC authentication of private v4 requests, with WhiteBIT's payload, signature and nonce rules (§2.3).

Rules, in the order they are checked: key known (401 code 10), signature == hex(HMAC-SHA512(secret, X-TXC-PAYLOAD))
(401 code 10), payload == base64(body bytes) (400 code 9 "Invalid payload."), key enabled (401 code 2), `request`
== the path (401 code 10), nonce present, and then either strictly above the key's last nonce or, with
`nonceWindow: true`, a Unix-ms time within the window of server time, unused so far. A nonce that is not above the
last one (or reused in the window) answers HTTP 429 {"code":0,"errors":{},"message":"Too many requests."}; a nonce
outside the window answers the documented "Your nonce is more than 5 seconds lesser than the current nonce" (code 0;
the docs give no HTTP status, the sandbox keeps 429 like the other nonce refusal: docs/whitebit.md §2.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from botkit.sandbox.engine import ExchangeError
from botkit.sandbox.keys import ApiKey, ApiKeyRegistry

_PRUNE_AT = 4096


def _unauthorized(message: str = "Unauthorized request.", code: int = 10) -> ExchangeError:
    return ExchangeError(401, code, message)


def too_many_requests() -> ExchangeError:
    return ExchangeError(429, 0, "Too many requests.")


NONCE_WINDOW_MESSAGE = "Your nonce is more than 5 seconds lesser than the current nonce"


def outside_window() -> ExchangeError:
    return ExchangeError(429, 0, NONCE_WINDOW_MESSAGE)


def _nonce_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class HmacAuth:
    def __init__(self, keys: ApiKeyRegistry, clock: Callable[[], float], window_ms: int) -> None:
        self.keys = keys
        self.clock = clock
        self.window_ms = window_ms

    def authenticate(
        self, path: str, headers: Any, body: bytes, needs: frozenset[str]
    ) -> tuple[ApiKey, dict[str, Any]]:
        """The key and the decoded body of a signed request, or an `ExchangeError` shaped like WhiteBIT's."""
        key_id = headers.get("X-TXC-APIKEY")
        if not key_id:
            raise _unauthorized()
        key = self.keys.get(key_id)
        if key is None:
            raise _unauthorized()
        payload = headers.get("X-TXC-PAYLOAD")
        if not payload:
            raise _unauthorized("Payload not provided.")
        signature = headers.get("X-TXC-SIGNATURE") or ""
        expected = hmac.new(key.secret.encode(), payload.encode(), hashlib.sha512).hexdigest().encode()
        if not hmac.compare_digest(expected, signature.lower().encode("utf-8", "replace")):
            raise _unauthorized()
        try:
            decoded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ExchangeError(400, 9, "Invalid payload.") from None
        if decoded != body:
            raise ExchangeError(400, 9, "Invalid payload.")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ExchangeError(400, 9, "Invalid payload.") from None
        if not isinstance(data, dict):
            raise ExchangeError(400, 9, "Invalid payload.")
        if not key.enabled:
            raise _unauthorized("This action is unauthorized. Enable your key in API settings", code=2)
        if "request" not in data:
            raise ExchangeError(400, 9, "Request not provided.")
        if data["request"] != path:
            raise _unauthorized()
        if "nonce" not in data:
            raise ExchangeError(400, 9, "Nonce not provided.")
        window = data.get("nonceWindow", False)
        if not isinstance(window, bool):
            raise ExchangeError(400, 9, "Invalid nonceWindow.")
        self._check_nonce(key, _nonce_value(data["nonce"]), window)
        if not needs <= key.permissions:
            raise ExchangeError(403, 4, "This API Key is not authorized to perform this action.")
        return key, data

    def _check_nonce(self, key: ApiKey, nonce: int | None, window: bool) -> None:
        if nonce is None:
            raise too_many_requests()
        if window:
            now_ms = int(self.clock() * 1000)
            if abs(nonce - now_ms) > self.window_ms:
                raise outside_window()
            if nonce in key.recent_nonces:
                raise too_many_requests()
            key.recent_nonces.add(nonce)
            if len(key.recent_nonces) > _PRUNE_AT:
                floor = now_ms - 2 * self.window_ms
                key.recent_nonces = {n for n in key.recent_nonces if n >= floor}
        elif nonce <= key.last_nonce:
            raise too_many_requests()
        key.last_nonce = max(key.last_nonce, nonce)
