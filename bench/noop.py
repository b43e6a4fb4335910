"""Servers of the same shape as the gateway's intake, doing nothing: the baselines.

    python bench/noop.py aiohttp PORT SECONDS   aiohttp, POST /webhooks/{connector} and
                                                POST /events (a subscriber), reads the body
    python bench/noop.py raw PORT SECONDS       a raw asyncio responder (the generator's ceiling)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import serve_raw  # noqa: E402


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b'{"status":"accepted"}', content_type="application/json")


async def serve_aiohttp(port: int, seconds: float) -> None:
    app = web.Application()
    app.router.add_post("/webhooks/{connector}", receive)
    app.router.add_post("/events", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.sleep(seconds)
    await runner.cleanup()


if __name__ == "__main__":
    kind, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if kind == "raw":
        asyncio.run(serve_raw("127.0.0.1", port, seconds))
    else:
        asyncio.run(serve_aiohttp(port, seconds))
