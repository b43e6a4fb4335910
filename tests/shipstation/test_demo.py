"""The demo as a newcomer runs it (ShipStation's sandbox, the shipped config.toml), and the
sandbox standing alone."""

from __future__ import annotations

from pathlib import Path

from tests.processes import run_demo


async def test_demo_shows_the_split_reconcile(tmp_path: Path) -> None:
    text, gateway_port = await run_demo(tmp_path, "--scenario", "shipstation")
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
