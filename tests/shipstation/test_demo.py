"""The demo as a newcomer runs it (ShipStation's sandbox, the shipped config.toml), and the
sandbox standing alone."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from tests.processes import ROOT, free_port


async def test_demo_shows_the_split_reconcile(tmp_path: Path) -> None:
    config = tmp_path / "demo.toml"
    gateway_port, sandbox_port = free_port(), free_port()
    config.write_text((ROOT / "config.toml").read_text()
                      .replace("port = 8080", f"port = {gateway_port}")
                      .replace("8081", str(sandbox_port))
                      .replace('path = "data/gateway.sqlite3"',
                               f'path = "{tmp_path / "gateway.sqlite3"}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPSTATION_", "GATEWAY_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--config", str(config), "demo", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Serving until Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, "".join(lines)
            lines.append(line.decode())
    finally:
        process.terminate()
        await process.wait()
    text = "".join(lines)
    statuses = [s for s in ("unfulfilled ", "partially_fulfilled", "fulfilled ")
                if s in text]
    assert statuses == ["unfulfilled ", "partially_fulfilled", "fulfilled "], text
    assert " 6/10 shipped" in text and "10/10 shipped" in text
    assert "1001-1 (6 units) and 1001-2 (4 units)" in text
    # The channel pushed it after its (demo) delay, with the custom fields under
    # ShipStation's names, and the demo subscriber verified each signed event.
    assert "internalNotes='Deliver to dock 4', advancedOptions.customField1='LTL'" in text
    for event in ("fulfillment_order.created", "order.pushed", "invoice.requested",
                  "fulfillment_order.status_changed"):
        assert f"[subscriber] {event}" in text, text
    assert "REJECTED" not in text
    assert text.count("unfulfilled -> partially_fulfilled  (signature ok)") == 1
    assert f"curl -H 'Authorization: Bearer demo-token' http://127.0.0.1:{gateway_port}" in text
    assert (tmp_path / "demo.sqlite3").exists()
