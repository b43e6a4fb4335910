"""The `fulfillment-gateway` command: serve, demo, migrate, poll, dead-letters."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pkgutil
import sys
import urllib.error
import urllib.request
from importlib import metadata

from gateway import config as config_mod
from gateway import logs
from gateway.connector import Connector, connector_type
from gateway.errors import ConfigError, GatewayError
from storage import DeadLetter, Storage, StorageInUse, StorageUnavailable

PROGRESS_FROM = 10  # replaying this many or more shows a progress bar
HEALTHCHECK_SECONDS = 4.0  # within the container HEALTHCHECK's own 5 s


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _version() -> str:
    try:
        return metadata.version("fulfillment-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """--config and --log-level, accepted before the subcommand and after it alike (a
    subcommand's copy leaves the value alone unless given there)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--config", default=default(os.environ.get("GATEWAY_CONFIG",
                                                                   "config.toml")),
                        help="path to config.toml (default: $GATEWAY_CONFIG or ./config.toml)")
    parser.add_argument("--log-level", default=default("INFO"), type=str.upper,
                        choices=LOG_LEVELS, metavar="{debug,info,warning,error}",
                        help="least severe log lines written (default: info; any case)")


def subcommand_options(parser: argparse.ArgumentParser) -> None:
    """--config and --log-level on a connector type's own subcommand too."""
    _common(parser, top=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fulfillment-gateway",
                                     description="Keeps fulfillment status true across partners.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, description: str = "") -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=summary, description=description or summary)
        _common(child, top=False)
        return child

    command("serve", "run the gateway", "Run the gateway: the HTTP API and webhooks on"
            " server.host:server.port, the worker, the outbox and the scheduled polls, until"
            " SIGTERM or SIGINT.")
    demo = command("demo", "run the gateway with its sandboxes and a scripted order",
                   "Start each enabled connector's sandbox and the gateway on the embedded"
                   " SQLite default, then play each connector's scripted act through them.")
    demo.add_argument("--scenario", help="only one connector's act (its type or its name in"
                                          " the config); default: every act in turn")
    command("migrate", "apply database migrations and exit",
            "Apply the storage backend's pending migrations and print the schema version.")
    poll = command("poll", "poll one connector now (every feed, or --feed)",
                   "Poll one connector's feeds once, now; a running gateway processes what"
                   " they bring.")
    poll.add_argument("connector", help="the connector's name in config.toml")
    poll.add_argument("--feed", help="only this feed (default: every enabled feed)")
    dead = command("dead-letters", "list, replay or discard dead letters",
                   "Inbox events and outbound messages that ran out of attempts.")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="action")
    listing = dead_sub.add_parser("list", help="print every dead letter, one per line",
                                  description="Print every dead letter: id, kind, connector or"
                                              " destination, attempts, last error.")
    _common(listing, top=False)
    for action, summary in (("replay", "queue dead letters again (a running gateway picks"
                                       " them up)"),
                            ("discard", "give up on dead letters for good")):
        child = dead_sub.add_parser(action, help=summary, description=summary)
        _common(child, top=False)
        child.add_argument("ids", nargs="*", help="dead letter ids, e.g. inbox-12 outbox-7")
        child.add_argument("--all", action="store_true", help="every dead letter")
    inventory = command("inventory", "push stock levels to partners from a file",
                        "Stock levels for the partners that take them.")
    inventory_sub = inventory.add_subparsers(dest="action", required=True, metavar="action")
    push = inventory_sub.add_parser(
        "push", help="queue the levels of a CSV file (a running gateway sends them)",
        description="Read FILE.csv (columns warehouse, sku, quantity, and optionally date"
                    " YYYY-MM-DD for future stock and prebook true/false), check every row,"
                    " consolidate (the last level for a warehouse, date and SKU wins), check"
                    " SKUs and warehouses against what each partner knows, and queue the"
                    " pushes. Nothing is queued if any row or name is refused.")
    _common(push, top=False)
    push.add_argument("file", help="the CSV file")
    push.add_argument("--connector", help="only this connector (default: every enabled one"
                                          " that takes inventory)")
    command("healthcheck", "exit 0 if the gateway on this machine is ready",
            "GET /readyz on 127.0.0.1 at the port the config names (the container's"
            " HEALTHCHECK); exit 0 when ready, 1 with the reason when not.")
    sandbox = command("sandbox", "run a partner's sandbox on its own",
                      "Run a connector type's stand-in server on loopback, for trying the"
                      " gateway or a connector by hand. It needs no config file.")
    kinds = sandbox.add_subparsers(dest="type", required=True, metavar="type")
    for name, cls in sandbox_types().items():
        child = kinds.add_parser(name, help=f"the {name} sandbox",
                                 description=cls.sandbox_about,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        child.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
        child.add_argument("--port", type=int, default=cls.sandbox_port,
                           help=f"default: {cls.sandbox_port}")
    for name, cls in command_types().items():
        child = command(name, f"{name}'s own commands", cls.cli_about)
        cls.add_cli(child)
    return parser


def _types_with(what: str) -> dict[str, type[Connector]]:
    """Every connector package under connectors/ whose type has `what` (its help text).
    A package without CONNECTOR is code several types share, not a type."""
    import connectors

    found = {}
    for module in pkgutil.iter_modules(connectors.__path__):
        if not hasattr(importlib.import_module(f"connectors.{module.name}"), "CONNECTOR"):
            continue
        cls = connector_type(module.name, what)
        if getattr(cls, f"{what}_about"):
            found[module.name] = cls
    return found


def command_types() -> dict[str, type[Connector]]:
    """The connector types with commands of their own."""
    return _types_with("cli")


def sandbox_types() -> dict[str, type[Connector]]:
    """The connector types that have a sandbox."""
    return _types_with("sandbox")


async def _sandbox(type_name: str, host: str, port: int) -> None:
    from aiohttp import web

    from gateway.app import listen, until_stopped

    cls = connector_type(type_name, "sandbox")
    runner = web.AppRunner(cls.standalone_sandbox(), access_log=None)
    await runner.setup()
    try:
        await listen(runner, host, port, "--port")
        print(f"{type_name} sandbox on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
        await until_stopped()
    finally:
        await runner.cleanup()


def _healthcheck(cfg: config_mod.Config) -> int:
    host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{cfg.server.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_SECONDS) as answer:  # noqa: S310
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        print(f"not ready: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status == 200:
        print(f"ready: {url}")
        return 0
    print(f"not ready: {url}: HTTP {status} {body[:500].decode(errors='replace')}",
          file=sys.stderr)
    return 1


async def _migrate(cfg: config_mod.Config) -> None:
    storage = cfg.open_storage()
    await storage.open()
    try:
        applied = await storage.migrate()
        print(f"schema version {await storage.schema_version()} ({applied} migration(s) applied)")
    finally:
        await storage.close()


async def _poll(cfg: config_mod.Config, name: str, feed: str | None) -> None:
    from gateway.app import Gateway

    gateway = Gateway(cfg, serving=False)  # the running gateway's worker takes the records
    await gateway.start()
    try:
        result = await gateway.poller.poll(name, feed)
        for feed_name, summary in result["feeds"].items():
            print(f"{name} {feed_name}: {summary['records']} record(s),"
                  f" {summary['new_events']} new inbox event(s)")
    finally:
        await gateway.stop()


def _csv_rows(path: str) -> list[dict[str, str | None]]:
    import csv

    from gateway.inventory import COLUMNS

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GatewayError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    missing = [c for c in COLUMNS[:3] if c not in header]
    if missing:
        raise GatewayError(f"{path}: no column(s) {', '.join(missing)} (the header names"
                           f" them: {', '.join(COLUMNS)})")
    return rows


async def _inventory_push(cfg: config_mod.Config, path: str,
                          rows: list[dict[str, str | None]], connector: str | None) -> int:
    from rich.progress import Progress

    from gateway.app import Gateway
    from gateway.inventory import read_csv

    levels, problems = [], []
    with Progress(transient=True, disable=len(rows) < PROGRESS_FROM * 100) as progress:
        task = progress.add_task("Checking rows", total=len(rows))
        for start in range(0, len(rows), 1000):
            found, wrong = read_csv(rows[start:start + 1000], start_line=start + 2)
            levels += found
            problems += wrong
            progress.advance(task, min(1000, len(rows) - start))
    if problems:
        for problem in problems[:50]:
            print(f"{path}: {problem}", file=sys.stderr)
        more = " (the first 50 shown)" if len(problems) > 50 else ""
        print(f"{len(problems)} row problem(s){more}; nothing queued", file=sys.stderr)
        return 1
    gateway = Gateway(cfg, serving=False)  # the running gateway's dispatcher sends them
    await gateway.start()
    try:
        lines, queued = await gateway.commands.push_inventory(connector, levels)
    finally:
        await gateway.stop()
    dated = sum(1 for line in lines if line["date"])
    warehouses = len({line["warehouse"] for line in lines})
    print(f"{len(rows)} row(s) read; {len(lines)} line(s) after consolidation"
          f" ({len(levels) - len(lines)} repeated level(s) replaced by a later one);"
          f" {len(lines) - dated} available now, {dated} future"
          f" ({sum(1 for line in lines if line['prebook'])} prebook); {warehouses}"
          f" warehouse(s)")
    for name in dict.fromkeys(n for n, _ in queued):
        ids = [f"outbox-{i}" for n, i in queued if n == name]
        print(f"{name}: {len(ids)} push(es) queued: {', '.join(ids)}")
    return 0


async def _all_dead_letters(storage: Storage) -> list[DeadLetter]:
    items, cursor = [], None
    while True:
        page = await storage.list_dead_letters(cursor, 200)
        items += page.items
        if not page.next_cursor:
            return items
        cursor = page.next_cursor


async def _dead_letters(cfg: config_mod.Config, action: str, ids: list[str],
                        replay_all: bool) -> None:
    from rich.progress import Progress

    from gateway.commands import Commands
    from gateway.outbound import Outbound

    storage = cfg.open_storage()
    commands = Commands(cfg, storage, Outbound(cfg), {})  # the same change the API makes
    await storage.open()
    try:
        await storage.migrate()
        if action == "list":
            items = await _all_dead_letters(storage)
            for item in items:
                where = item.connector or item.destination
                print(f"{item.id}\t{item.kind}\t{where}\t{item.attempts} attempt(s)\t"
                      f"{item.error}")
            if not items:
                print("no dead letters")
            return
        if replay_all:
            ids = [item.id for item in await _all_dead_letters(storage)]
            if not ids:
                print(f"nothing to {action}: there are no dead letters")
                return
        if not ids:
            raise GatewayError(f"name the dead letters to {action}, or pass --all")
        missing = []
        change = commands.replay_dead_letter if action == "replay" else \
            commands.discard_dead_letter
        # A bar only where there is something to watch; it draws on stderr, never in a pipe.
        with Progress(transient=True, disable=len(ids) < PROGRESS_FROM) as progress:
            task = progress.add_task(f"{action.capitalize()}ing dead letters", total=len(ids))
            for dead_id in ids:
                if not await change(dead_id):
                    missing.append(dead_id)
                progress.advance(task)
        done = len(ids) - len(missing)
        print(f"{done} dead letter(s) queued again; a running gateway processes them within"
              " seconds" if action == "replay" else f"{done} dead letter(s) discarded")
        if missing:
            raise GatewayError(f"no such dead letter: {', '.join(missing)}")
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        logs.configure(args.log_level)
        try:
            asyncio.run(_sandbox(args.type, args.host, args.port))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    types = command_types()
    if args.command in types:
        logs.configure(args.log_level)
        try:
            return types[args.command].run_cli(args)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
        except GatewayError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    if args.command == "demo":
        from gateway.demo import main as demo_main

        return demo_main(args.config, args.scenario)
    logs.configure(args.log_level)
    try:
        cfg = config_mod.load(args.config)
        if args.command == "serve":
            from gateway.app import serve

            try:
                asyncio.run(serve(cfg))
            except KeyboardInterrupt:
                pass
        elif args.command == "healthcheck":
            return _healthcheck(cfg)
        elif args.command == "migrate":
            asyncio.run(_migrate(cfg))
        elif args.command == "poll":
            asyncio.run(_poll(cfg, args.connector, args.feed))
        elif args.command == "inventory":
            rows = _csv_rows(args.file)
            return asyncio.run(_inventory_push(cfg, args.file, rows, args.connector))
        else:
            asyncio.run(_dead_letters(cfg, args.action, getattr(args, "ids", []),
                                      getattr(args, "all", False)))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (StorageInUse, StorageUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
