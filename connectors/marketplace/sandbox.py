"""What the store sandboxes share: the request log, faults on command, a fixed-window quota,
and webhooks sent to wherever a test or the demo says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    path: str
    method: str | None
    status: int
    times: int
    after: bool = False  # carried out, then answered with the error: an answer lost
    skip: int = 0  # matching calls let through first (a GraphQL mutation after its read)


@dataclass
class Quota:
    """A fixed window of `limit` requests (BigCommerce's style; Shopify's bucket is its own)."""

    limit: int
    window_seconds: float
    started: float = 0.0
    used: int = 0

    def take(self) -> tuple[bool, int, float]:
        """(allowed, left, seconds until the window resets)."""
        now = time.monotonic()
        if now - self.started >= self.window_seconds:
            self.started, self.used = now, 0
        reset = self.window_seconds - (now - self.started)
        if self.used >= self.limit:
            return False, 0, reset
        self.used += 1
        return True, self.limit - self.used, reset


@dataclass
class SandboxBase:
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hook_url: str | None = None
    hooks_sent: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def calls(self, method: str, path_prefix: str) -> int:
        return sum(1 for r in self.requests
                   if r["method"] == method and r["path"].startswith(path_prefix))

    def fault_for(self, request: web.Request) -> Fault | None:
        fault = next((f for f in self.faults if request.path.startswith(f.path)
                      and f.method in (None, request.method)), None)
        if fault is not None and fault.skip > 0:
            fault.skip -= 1
            return None
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
        return fault

    def send_hook(self, session: aiohttp.ClientSession | None, body: bytes,
                  headers: dict[str, str]) -> None:
        """Deliver a webhook in the background, as the platform would (a failed delivery is
        logged in hooks_sent with its status; platforms retry, the sandbox does not)."""
        if not self.hook_url or session is None:
            return
        entry: dict[str, Any] = {"body": orjson.loads(body), "status": None}
        self.hooks_sent.append(entry)

        async def deliver() -> None:
            try:
                async with session.post(self.hook_url or "", data=body, headers={
                        "Content-Type": "application/json", **headers}) as resp:
                    entry["status"] = resp.status
            except aiohttp.ClientError as exc:
                entry["status"] = f"{type(exc).__name__}"

        task = asyncio.get_running_loop().create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def read_fault(body: dict[str, Any]) -> Fault:
    return Fault(path=str(body["path"]), method=body.get("method"), status=int(body["status"]),
                 times=int(body.get("times", 1)), after=bool(body.get("after")),
                 skip=int(body.get("skip", 0)))


async def json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text="body is not JSON") from None


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def hook_session(app: web.Application, key: web.AppKey[Any]) -> None:
    """The sandbox's own client session for webhooks, opened and closed with the app."""
    async def open_close(app: web.Application) -> Any:
        app[key] = aiohttp.ClientSession()
        yield
        await app[key].close()

    app.cleanup_ctx.append(open_close)


def add_control_routes(app: web.Application, key: web.AppKey[Any]) -> None:
    """The control routes every store sandbox has: where its webhooks go, faults on command,
    the request log (its state route is its own)."""
    async def hooks(request: web.Request) -> web.Response:
        state = request.app[key]
        state.hook_url = (await json_body(request)).get("url")
        return answer({"url": state.hook_url})

    async def faults(request: web.Request) -> web.Response:
        state = request.app[key]
        body = await json_body(request)
        if body.get("clear"):
            state.faults.clear()
        else:
            state.faults.append(read_fault(body))
        return answer({"faults": len(state.faults)})

    async def requests(request: web.Request) -> web.Response:
        return answer(request.app[key].requests)

    app.router.add_post("/_sandbox/hooks", hooks)
    app.router.add_post("/_sandbox/faults", faults)
    app.router.add_get("/_sandbox/requests", requests)
