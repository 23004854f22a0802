"""HMAC-SHA512 request signing for WhiteBIT's private v4 API (docs/whitebit.md §2.3).

The server checks the signature over the base64 payload and compares the payload with the body, so the bytes we
sign must be the bytes we send: we serialise once, compactly, and hand those exact bytes to the HTTP client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr


class NonceSource:
    """Millisecond nonces on the *server's* clock (local clock + `offset_ms`), strictly increasing per key even when
    the clock stalls or steps back, and never issued twice.

    With `nonceWindow` the server wants a nonce within ±5 s of its own time, so a local clock 8 s off fails every
    request: the REST client measures the offset (`GET /api/v4/public/time`) and sets it here. A backward step of
    the offset is allowed only in window mode (`adjust(..., may_go_back=True)`); without the window the server wants
    each nonce above the last one, so the sequence never goes back. A `threading.Lock` (not an asyncio one) keeps it
    safe for threads and costs no await on the hot path.
    """

    _REMEMBER = 8192  # nonces remembered so that a backward step never reissues one

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0
        self._offset_ms = 0
        self._lock = threading.Lock()
        self._recent: deque[int] = deque(maxlen=self._REMEMBER)
        self._recent_set: set[int] = set()

    @property
    def offset_ms(self) -> int:
        return self._offset_ms

    def adjust(self, offset_ms: int, *, may_go_back: bool) -> None:
        """Use server time = local time + `offset_ms` from now on."""
        with self._lock:
            self._offset_ms = int(offset_ms)
            if may_go_back:
                self._last = min(self._last, self._clock_ms() + self._offset_ms - 1)

    def next(self) -> int:
        with self._lock:
            n = self._clock_ms() + self._offset_ms
            if n <= self._last:
                n = self._last + 1
            while n in self._recent_set:
                n += 1
            self._last = n
            if len(self._recent) == self._REMEMBER:
                self._recent_set.discard(self._recent[0])
            self._recent.append(n)
            self._recent_set.add(n)
            return n


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What goes on the wire: `body` is exactly what `X-TXC-PAYLOAD` encodes."""

    path: str
    body: bytes
    headers: dict[str, str]
    nonce: int

    def __repr__(self) -> str:  # headers hold the key and signature; keep them out of logs
        return f"SignedRequest(path={self.path!r}, nonce={self.nonce}, body_len={len(self.body)})"


class HmacSigner:
    """Signs private v4 calls with one API key; one instance per key so the nonce sequence is per key."""

    def __init__(
        self,
        api_key: str,
        api_secret: SecretStr,
        *,
        nonce_window: bool = True,
        nonces: NonceSource | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is empty: set the public API key (from `botkit auth apikey` or the dashboard)")
        if not api_secret.get_secret_value():
            raise ValueError("api_secret is empty: set the API secret (from `botkit auth apikey` or the dashboard)")
        self.api_key = api_key
        self._secret = api_secret.get_secret_value().encode()
        self.nonce_window = nonce_window
        self.nonces = nonces or NonceSource()

    def __repr__(self) -> str:
        return f"HmacSigner(api_key={self.api_key[:4]}…, nonce_window={self.nonce_window})"

    @property
    def clock_offset_ms(self) -> int:
        """Server time minus local time, as last measured (0 until the client syncs)."""
        return self.nonces.offset_ms

    def set_clock_offset(self, offset_ms: int) -> None:
        self.nonces.adjust(offset_ms, may_go_back=self.nonce_window)

    def sign(self, path: str, params: Mapping[str, Any] | None = None) -> SignedRequest:
        """Build body + headers for `path`; `None` params are dropped (WhiteBIT rejects nulls)."""
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with '/', e.g. '/api/v4/order/new'")
        body: dict[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}
        for reserved in ("request", "nonce", "nonceWindow"):
            if reserved in body:
                raise ValueError(f"param {reserved!r} is set by the signer; remove it from the request params")
        nonce = self.nonces.next()
        body["request"] = path
        body["nonce"] = nonce
        if self.nonce_window:
            body["nonceWindow"] = True
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        payload = base64.b64encode(raw)
        signature = hmac.new(self._secret, payload, hashlib.sha512).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-TXC-APIKEY": self.api_key,
            "X-TXC-PAYLOAD": payload.decode("ascii"),
            "X-TXC-SIGNATURE": signature,
        }
        return SignedRequest(path=path, body=raw, headers=headers, nonce=nonce)


def verify_signature(secret: str, payload_b64: str, signature_hex: str) -> bool:
    """Server-side check (used by the sandbox and tests): constant-time HMAC comparison."""
    expected = hmac.new(secret.encode(), payload_b64.encode(), hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature_hex)
