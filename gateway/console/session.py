"""The console's sessions: a signed cookie, no server-side state, so any replica reads it.

The cookie holds the operator's name, a session id and when it was last used, signed with
HMAC-SHA256 under a key made from the operators' tokens (so changing the tokens ends every
session, and replicas with the same tokens share sessions). It is HttpOnly, SameSite=Strict,
Secure over TLS, and re-issued on each request: a session unused for
`[console] session_idle_minutes` has to log in again. Each form carries a CSRF token derived
from the session id; the login form, before there is a session, a random one also set as a
short-lived cookie (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"
PATH = "/console/"


@dataclass(frozen=True)
class Session:
    operator: str
    session_id: str
    last_seen: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(self, tokens: Mapping[str, str], idle_seconds: float) -> None:
        self.tokens = dict(tokens)
        self.idle_seconds = idle_seconds
        material = "\x00".join(f"{n}\x01{t}" for n, t in sorted(self.tokens.items()))
        self._key = hashlib.sha256(b"fulfillment-gateway console\x00" + material.encode()).digest()

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def operator_of(self, token: str) -> str | None:
        """The operator whose token this is (every token compared, in constant time)."""
        found = None
        for name, known in self.tokens.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                found = name
        return found

    def issue(self, operator: str, session_id: str | None = None) -> str:
        body = _b64(f"{operator}|{session_id or secrets.token_hex(16)}|{int(time.time())}"
                    .encode())
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            operator, session_id, seen = _unb64(body).decode().split("|")
            last_seen = int(seen)
        except (ValueError, UnicodeDecodeError):
            return None
        if operator not in self.tokens or time.time() - last_seen > self.idle_seconds:
            return None
        return Session(operator, session_id, last_seen)

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf|{session.session_id}")

    def csrf_ok(self, session: Session, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(session).encode())

    def set_cookie(self, request: web.Request, response: web.StreamResponse, name: str,
                   value: str, max_age: float) -> None:
        response.set_cookie(name, value, path=PATH, httponly=True, samesite="Strict",
                            secure=request.secure, max_age=int(max_age))
