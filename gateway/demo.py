"""`fulfillment-gateway demo`: the gateway and its partners' sandboxes in one process.

Every connector whose base_url is a loopback address gets its sandbox served there; missing
secrets are filled with demo values; the database is a fresh file beside the configured one.
Each connector type's own scenario then runs, and everything keeps serving until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError
from yarl import URL

from gateway import config as config_mod
from gateway import logs
from gateway.app import Gateway, bind, listen
from gateway.config import Config, SubscriberConfig
from gateway.connector import DemoContext, connector_class

DEMO_TOKEN = "demo-token"
DEMO_DELAY_SECONDS = 5.0  # a channel's push delay in the demo (config.toml: 15 minutes)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def demo_environment(path: str | Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with every `*_env` variable the config names set (demo values)."""
    import tomllib

    doc = tomllib.loads(Path(path).read_text())
    env = dict(environ)
    tokens_env = doc.get("api", {}).get("tokens_env", config_mod.ApiConfig().tokens_env)
    env.setdefault(tokens_env, DEMO_TOKEN)
    for table in doc.get("connectors", []):
        for key, var in table.items():
            if key.endswith("_env") and isinstance(var, str):
                env.setdefault(var, f"demo-{var.lower().replace('_', '-')}")
    for table in doc.get("subscribers", []):
        var = table.get("secret_env")
        if isinstance(var, str):
            env.setdefault(var, "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    return env


def say(text: str) -> None:
    print(text, flush=True)


def demo_config(config_path: str) -> Config:
    """The config with demo secrets filled in, a fresh demo database, and channel delays of
    a few seconds instead of the configured minutes."""
    cfg = config_mod.load(config_path, demo_environment(config_path, os.environ))
    db = Path(cfg.storage.path).with_name("demo.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(db) + suffix).unlink()
    channels = tuple(
        c.model_copy(update={"oms": c.oms.model_copy(
            update={"delay_minutes": DEMO_DELAY_SECONDS / 60})})
        if c.oms and c.oms.delay_minutes > 0 else c for c in cfg.channels)
    return replace(cfg, storage=cfg.storage.model_copy(update={"path": str(db)}),
                   channels=channels)


class DemoSubscriber:
    """A stand-in internal service: verifies each signed event and prints it."""

    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.seen: set[str] = set()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            say("  [subscriber] REJECTED an event with a bad signature")
            return web.Response(status=401)
        if event["id"] not in self.seen:  # at least once: drop repeats by webhook-id
            self.seen.add(event["id"])
            say(f"  [subscriber] {event['type']:<34} {_summary(event['data'])}  (signature ok)")
        return web.Response(status=204)

    def subscribe(self, cfg: Config, url: str) -> Config:
        sub = SubscriberConfig(name="demo-subscriber", url=url, secret_env="DEMO_EVENTS_SECRET",
                               events=("*",), key="demo")
        return replace(cfg, subscribers=(*cfg.subscribers, sub),
                       secrets={**cfg.secrets, sub.secret_env: self.secret})


def _summary(data: dict) -> str:
    if "inbound_shipment_id" in data:  # stock: inbound shipments and transfer orders
        if "units" in data:
            units = ", ".join(f"{u['quantity']} x {u['sku']}" for u in data["units"])
            return f"{data['purchase_order_id']}: received {units}"
        if "kind" in data:
            return f"{data['inbound_shipment_id']}: {data['kind']} of {data['quantity']}" \
                   f" x {data['sku']}"
        if "transfer_order_id" in data:
            return f"{data['transfer_order_id']}: {data['status']}"
        return f"{data['inbound_shipment_id']}: {data['status']}"
    if "new_status" in data:
        return f"{data['fulfillment_order_id']}: {data['old_status']} -> {data['new_status']}"
    if "partner_order_id" in data:
        return (f"{data['fulfillment_order_id']}: {data['connector']} order"
                f" {data['partner_order_id']}")
    if "shipment_id" in data and "lines" in data and "source" not in data:
        units = sum(line["quantity"] for line in data["lines"])
        return f"{data['fulfillment_order_id']}: invoice for {units} unit(s)"
    if "external_id" in data:
        return f"label {data['external_id']} for {', '.join(data['fulfillment_order_ids'])}"
    return str(data.get("fulfillment_order_id", ""))


async def run_demo(cfg: Config, scenario: str | None = None) -> None:
    db = cfg.storage.path

    runners: list[web.AppRunner] = []
    try:
        subscriber = DemoSubscriber()
        events_app = web.Application()
        events_app.router.add_post("/events", subscriber.receive)
        runner = web.AppRunner(events_app, access_log=None)
        await runner.setup()
        runners.append(runner)
        await listen(runner, "127.0.0.1", 0, "the demo subscriber")
        events_url = f"http://127.0.0.1:{runner.addresses[0][1]}/events"
        cfg = subscriber.subscribe(cfg, events_url)
        say(f"Demo subscriber listening on {events_url} (prints every signed event)")
        for c in cfg.connectors:
            url = URL(c.base_url)
            if c.enabled and url.host in LOOPBACK:
                runner = web.AppRunner(connector_class(c).sandbox(c, cfg), access_log=None)
                await runner.setup()
                runners.append(runner)
                await listen(runner, url.host, url.port, f"{c.key}.base_url")
                say(f"{c.name} sandbox listening on {c.base_url}")
        gateway = Gateway(cfg)
        sock = bind(cfg.server.host, cfg.server.port, "server.port", "server.host")
        runner = gateway.runner()
        try:
            await runner.setup()  # the gateway starts only once its port is had
        except BaseException:
            sock.close()
            raise
        runners.append(runner)
        await web.SockSite(runner, sock).start()
        api_url = f"http://{cfg.server.host}:{cfg.server.port}"
        say(f"Gateway listening on {api_url} (database {db})")
        token = cfg.api_tokens()[0]
        async with aiohttp.ClientSession() as session:
            for c in cfg.connectors:
                if c.enabled and URL(c.base_url).host in LOOPBACK \
                        and scenario in (None, c.type, c.name):
                    await connector_class(c).demo(DemoContext(
                        connector=c, app_config=cfg, api_url=api_url, api_token=token,
                        webhook_url=f"{api_url}/webhooks/{c.name}", session=session, say=say))
        say("")
        say(f"API:       {api_url}/api/v1/fulfillment-orders   (token: {token})")
        say(f"OpenAPI:   {api_url}/api/v1/openapi.json")
        for c in cfg.connectors:
            if c.enabled and URL(c.base_url).host in LOOPBACK:
                say(f"Sandbox:   {c.base_url}  ({c.name})")
        say(f"  curl -H 'Authorization: Bearer {token}' {api_url}/api/v1/fulfillment-orders")
        say("Serving until Ctrl-C.")
        await asyncio.Event().wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def main(config_path: str, scenario: str | None = None) -> int:
    logs.configure("WARNING")
    try:
        cfg = demo_config(config_path)
        known = {c.type for c in cfg.connectors} | {c.name for c in cfg.connectors}
        if scenario is not None and scenario not in known:
            raise config_mod.ConfigError(f"--scenario: no connector (type or name) {scenario!r}"
                                         f" in {config_path}; one of {', '.join(sorted(known))}")
        asyncio.run(run_demo(cfg, scenario))
    except KeyboardInterrupt:
        say("\nStopped.")
    except config_mod.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return 0

