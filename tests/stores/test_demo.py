"""The demo's marketplace act as a newcomer runs it (`demo --scenario shopify`, the shipped
config.toml): a Shopify buyer's order of 3 items fulfilled by the BigCommerce seller in two
parts, shown in the Shopify sandbox, polling stopped, and a correction after shipped."""

from __future__ import annotations

import re
from pathlib import Path

from tests.processes import run_demo


async def test_the_demo_plays_the_marketplace_act(tmp_path: Path) -> None:
    text, _ = await run_demo(tmp_path, "--scenario", "shopify")
    act = text[text.index("Marketplace act"):]
    assert "customer order #1001 for 2 x MUG, 1 x TEE" in act
    placed = re.search(r"placed with bigcommerce-seller as its order (\d+)", act)
    assert placed, act
    numbers = re.findall(r"bigcommerce-seller: shipment \d+, tracking (\w+)", act)
    assert len(numbers) == 2
    shown = re.findall(r"Shopify: fulfilment (\d x \w+), ups (\w+)", act)
    assert shown == [("2 x MUG", numbers[0]), ("1 x TEE", numbers[1])]
    assert "unfulfilled -> partially_fulfilled" in act
    assert "order #1001 is FULFILLED; FO fulfilled" in act
    assert "the 15-minute poll made 0 request(s) to bigcommerce-seller" in act
    assert f"fulfilment {numbers[1]} cancelled, {numbers[1]}X added" in act
    assert "Traceback" not in text
