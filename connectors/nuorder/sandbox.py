"""A NuOrder stand-in: OAuth 1.0a checked for real, in both signing styles, against the
secrets it was made with; the one-time handshake; NuOrder's error bodies. So far the subset
the connection needs; the feeds' and writes' endpoints come with them (issue 10).

Control routes (no auth): POST /_sandbox/approve (a person approves the pending app: the
answer is the verifier the NuOrder popup shows), GET /_sandbox/requests (the request log).
Run standalone: fulfillment-gateway sandbox nuorder [--port 8082]
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from connectors.nuorder.signing import Credentials, verify

STATE_KEY = web.AppKey("nuorder_sandbox", object)


@dataclass
class SandboxState:
    credentials: Credentials  # what the configured gateway signs with
    requests: list[dict[str, Any]] = field(default_factory=list)
    # handshake: temporary token -> (its secret, the verifier once approved)
    pending: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    companies: list[dict[str, Any]] = field(default_factory=list)


def _error(status: int, message: str) -> web.Response:
    """NuOrder's error body: {"code": status, "message": ...}."""
    return web.Response(body=orjson.dumps({"code": status, "message": message}),
                        status=status, content_type="application/json")


def state_of(app: web.Application) -> SandboxState:
    return app[STATE_KEY]  # type: ignore[return-value]


@web.middleware
async def oauth(request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    state = state_of(request.app)
    header = request.headers.get("Authorization", "")
    entry = {"at": time.monotonic(), "method": request.method, "path": request.path,
             "query": dict(request.query), "status": None}
    state.requests.append(entry)
    creds = state.credentials
    if request.path == "/api/initiate":
        creds = Credentials(creds.consumer_key, creds.consumer_secret)
    elif request.path == "/api/token":
        token = _param(header, "oauth_token")
        pending = state.pending.get(token)
        creds = Credentials(creds.consumer_key, creds.consumer_secret, token,
                            pending[0] if pending else "")
    if not verify(request.method, str(request.url), header, creds):
        entry["status"] = 401
        return _error(401, "Invalid OAuth header or signature")
    response = await handler(request)
    entry["status"] = response.status
    return response


def _param(header: str, name: str) -> str:
    for part in header.removeprefix("OAuth ").split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return ""


async def initiate(request: web.Request) -> web.Response:
    state = state_of(request.app)
    token, secret = secrets.token_hex(12), secrets.token_hex(16)
    state.pending[token] = (secret, None)
    return web.json_response({"oauth_token": token, "oauth_token_secret": secret,
                              "oauth_callback_confirmed": True})


async def token(request: web.Request) -> web.Response:
    state = state_of(request.app)
    header = request.headers.get("Authorization", "")
    temporary = _param(header, "oauth_token")
    pending = state.pending.get(temporary)
    if pending is None or pending[1] is None or _param(header, "oauth_verifier") != pending[1]:
        return _error(401, "Request token not approved, or the verifier is wrong")
    del state.pending[temporary]
    return web.json_response({"oauth_token": state.credentials.token,
                              "oauth_token_secret": state.credentials.token_secret})


async def company_codes(request: web.Request) -> web.Response:
    return web.json_response([c["code"] for c in state_of(request.app).companies])


async def control_approve(request: web.Request) -> web.Response:
    state = state_of(request.app)
    for temporary, (secret, verifier) in state.pending.items():
        if verifier is None:
            verifier = secrets.token_hex(4)
            state.pending[temporary] = (secret, verifier)
            return web.json_response({"oauth_token": temporary, "oauth_verifier": verifier})
    return _error(404, "no application is waiting for approval")


async def control_requests(request: web.Request) -> web.Response:
    return web.json_response(state_of(request.app).requests)


def create_app(credentials: Credentials) -> web.Application:
    app = web.Application(middlewares=[oauth])
    app[STATE_KEY] = SandboxState(credentials)
    app.router.add_get("/api/initiate", initiate)
    app.router.add_get("/api/token", token)
    app.router.add_get("/api/companies/codes/list", company_codes)
    app.router.add_post("/_sandbox/approve", control_approve)
    app.router.add_get("/_sandbox/requests", control_requests)
    return app
