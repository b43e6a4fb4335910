"""How the HTTP API's routes are declared and served: a route's query, body and answers
checked before its handler runs (every problem at once), bearer tokens, one error shape,
cursor pages. The routes themselves: gateway/api.py and gateway/stock.py."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import logs
from gateway.errors import (
    BadRequest,
    ClientGone,
    GatewayError,
    RequestTimeout,
    Unauthorized,
)
from gateway.intake import read_limited
from gateway.shapes import NoQuery, Problem, problems
from storage import InvalidCursor

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logs.get("gateway.api")
GATEWAY_KEY = web.AppKey("gateway", object)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# RFC 9110: a 401 names the scheme to use
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fulfillment-gateway"'}
# an escaped UTF-16 surrogate: pydantic's parser lets a lone one through, orjson does not
_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]")


@dataclass(frozen=True)
class Inputs:
    """What a route declared, checked: its query and (when it takes one) its body."""

    query: Any
    body: Any = None


RouteHandler = Callable[[web.Request, Inputs], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: RouteHandler
    operation_id: str
    summary: str
    responses: Mapping[int, tuple[Any, str]]  # status -> (what it answers, description)
    query: type[BaseModel] | None = NoQuery  # None: the handler reads the request itself
    body: type[BaseModel] | None = None
    body_schema: Any = None  # documented body of a handler that reads its own (webhooks)
    body_required: bool = True
    path_params: Mapping[str, Any] = field(default_factory=dict)
    secured: bool = True  # a bearer token (every /api/ route)
    also: tuple[int, ...] = ()  # other error statuses it answers (409, 501, ...)
    description: str = ""

    def errors(self) -> set[int]:
        found = {400, *self.also}
        if self.secured:
            found.add(401)
        if self.path_params:
            found.add(404)
        if self.body is not None:
            found |= {408, 413}
        return found


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None,
                   found: list[Problem] | None = None) -> web.Response:
    detail: dict[str, Any] = {"code": code, "message": message}
    if found:
        detail["problems"] = found
    response = json_response({"error": detail}, status)
    if headers:
        response.headers.update(headers)
    return response


def _check_token(request: web.Request, tokens: tuple[str, ...]) -> None:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized("send Authorization: Bearer <token>")
    if not any(hmac.compare_digest(presented.encode(), t.encode()) for t in tokens):
        raise Unauthorized("bearer token not recognised")


def refused(found: list[Problem]) -> BadRequest:
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in found[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return BadRequest(f"{len(found)} problem(s): {listed}{more}", list(found))  # type: ignore[arg-type]


def _query(request: web.Request, model: type[BaseModel]) -> Any:
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    found: list[Problem] = [{"field": k, "code": "repeated",
                             "message": "given more than once"} for k in repeated]
    try:
        value = model.model_validate(dict(request.query))
    except ValidationError as exc:
        found += problems(exc)
    if found:
        raise refused(found)
    return value


async def _body(request: web.Request) -> bytes:
    server = gateway_of(request).config.server
    return await read_limited(request, server.max_body_bytes, server.body_timeout_seconds)


async def _inputs(request: web.Request, route: Route) -> Inputs:
    if route.query is None:
        return Inputs(None)
    query = _query(request, route.query)
    if route.body is None:
        return Inputs(query)
    raw = await _body(request)
    if not raw.strip():
        if route.body_required:
            raise refused([{"field": "body", "code": "missing_field",
                             "message": "a JSON object is required"}])
        raw = b"{}"
    if _SURROGATE.search(raw):
        try:
            orjson.loads(raw)  # a \uD800-\uDFFF escape must be half of a pair
        except orjson.JSONDecodeError as exc:
            raise refused([{"field": "body", "code": "invalid_json", "message":
                             f"not Unicode text ({exc}); JSON is exchanged as UTF-8"}]) from None
    try:
        return Inputs(query, route.body.model_validate_json(raw))
    except ValidationError as exc:
        raise refused(problems(exc)) from None


def guard(route: Route, tokens: Callable[[], tuple[str, ...]] | None) -> Handler:
    """Wrap one route: its bearer tokens (when `tokens` is given), its declared inputs, and
    the one place errors become `{"error": {code, message, problems?}}`.

    A wrapper per route rather than an aiohttp middleware: a middleware runs on every
    request, webhooks included, and costs there (measured by bench/intake.py).
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            if tokens is not None:
                _check_token(request, tokens())
            return await route.handler(request, await _inputs(request, route))
        except Unauthorized as exc:
            return error_response(exc.status, exc.code, exc.message, CHALLENGE)
        except BadRequest as exc:
            response = error_response(exc.status, exc.code, exc.message,
                                      found=exc.problems)  # type: ignore[arg-type]
            if isinstance(exc, ClientGone):
                response.force_close()
            return response
        except GatewayError as exc:
            response = error_response(exc.status, exc.code, exc.message)
            if isinstance(exc, RequestTimeout):
                response.force_close()  # what is left of that body is not read
            return response
        except InvalidCursor as exc:
            return error_response(400, BadRequest.code, str(exc), found=[
                {"field": "cursor", "code": "invalid_value", "message": str(exc)}])
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed",
                    413: "payload_too_large"}.get(exc.status, "http_error")
            return error_response(exc.status, code, exc.reason)
        except Exception:  # noqa: BLE001 - logged with its traceback, never shown to the caller
            log.exception("api.unhandled", path=request.path, method=request.method)
            return error_response(500, "internal_error", "internal error; see the gateway's log")

    return guarded


def plain(handler: Handler) -> RouteHandler:
    """A handler that needs nothing declared (the webhook intake checks its own)."""

    async def call(request: web.Request, inputs: Inputs) -> web.StreamResponse:
        return await handler(request)

    return call


async def no_route(request: web.Request) -> web.Response:
    """Every path no route serves: 405 where another method would do, else 404."""
    if request.path.startswith("/api/"):  # no token, no hints about what exists
        _check_token(request, gateway_of(request).tokens)
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == CATCH_ALL:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        methods = ", ".join(sorted(allowed))
        return error_response(405, "method_not_allowed",
                              f"{request.method} is not allowed here; use {methods}",
                              {"Allow": methods})
    return error_response(404, "not_found", f"no route for {request.path}")


CATCH_ALL = "/{tail:.*}"


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY_KEY]  # type: ignore[return-value]


def page_response(items: list[Any], next_cursor: str | None) -> web.Response:
    return json_response({"items": items, "next_cursor": next_cursor})


