"""The `fulfillment-gateway` command: serve, demo, migrate, poll, dead-letters."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from gateway import config as config_mod
from gateway import logs
from gateway.errors import ConfigError, GatewayError
from storage import DeadLetter, Storage, StorageInUse

PROGRESS_FROM = 10  # replaying this many or more shows a progress bar


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fulfillment-gateway",
                                     description="Keeps fulfillment status true across partners.")
    parser.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG", "config.toml"),
                        help="path to config.toml (default: $GATEWAY_CONFIG or ./config.toml)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gateway")
    sub.add_parser("demo", help="run the gateway with its sandboxes and a scripted order")
    sub.add_parser("migrate", help="apply database migrations and exit")
    poll = sub.add_parser("poll", help="poll one connector now (every feed, or --feed)")
    poll.add_argument("connector")
    poll.add_argument("--feed", help="only this feed")
    dead = sub.add_parser("dead-letters", help="list, replay or discard dead letters")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    dead_sub.add_parser("list")
    replay = dead_sub.add_parser("replay", help="queue dead letters again (a running gateway"
                                                " picks them up)")
    replay.add_argument("ids", nargs="*", help="dead letter ids, e.g. inbox-12 outbox-7")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    discard = dead_sub.add_parser("discard", help="give up on dead letters for good")
    discard.add_argument("ids", nargs="*", help="dead letter ids, e.g. inbox-12 outbox-7")
    discard.add_argument("--all", action="store_true", help="every dead letter")
    return parser


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
            for item in await _all_dead_letters(storage):
                where = item.connector or item.destination
                print(f"{item.id}\t{item.kind}\t{where}\t{item.attempts} attempt(s)\t"
                      f"{item.error}")
            return
        if replay_all:
            ids = [item.id for item in await _all_dead_letters(storage)]
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
    if args.command == "demo":
        from gateway.demo import main as demo_main

        return demo_main(args.config)
    logs.configure(args.log_level)
    try:
        cfg = config_mod.load(args.config)
        if args.command == "serve":
            from gateway.app import serve

            try:
                asyncio.run(serve(cfg))
            except KeyboardInterrupt:
                pass
        elif args.command == "migrate":
            asyncio.run(_migrate(cfg))
        elif args.command == "poll":
            asyncio.run(_poll(cfg, args.connector, args.feed))
        else:
            asyncio.run(_dead_letters(cfg, args.action, getattr(args, "ids", []),
                                      getattr(args, "all", False)))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except StorageInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
