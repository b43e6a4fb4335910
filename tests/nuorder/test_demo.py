"""The demo as a newcomer runs it, both acts: ShipStation's split reconcile, then NuOrder's
golden path end to end over real HTTP (NuOrder's sandbox, the gateway, ShipStation's
sandbox): an approved order polled in, placed with ShipStation after the channel's delay,
shipped 6 + 4, NuOrder showing it shipped with both tracking numbers; then stock levels for
two dates pushed and shown consolidated."""

from __future__ import annotations

import re
from pathlib import Path

from tests.processes import run_demo


async def test_the_demo_plays_nuorders_golden_path(tmp_path: Path) -> None:
    text, _ = await run_demo(tmp_path)
    assert "went unfulfilled -> partially_fulfilled -> fulfilled" in text  # ShipStation's act
    act = text[text.index("NuOrder act"):]
    assert "order NU-5001 is approved (10 x COAT1 Navy, size M)" in act
    assert re.search(r"polled it in as FO fo_nuorder_\w+: 10 x SKU 0840002", act), act
    assert "the order is now processed" in act
    assert "NU-5001-1 (6 units) and NU-5001-2 (4 units)" in act
    shipped = re.findall(r"NuOrder: shipment of (\d) unit\(s\), \w+ (1Z\d+)", act)
    labels = re.findall(r"tracking (1Z\d+)\) and sent SHIP_NOTIFY", act)
    assert [units for units, _ in shipped] == ["6", "4"]
    assert [tracking for _, tracking in shipped] == labels  # NuOrder has both, as shipped
    assert "NuOrder: order NU-5001 is shipped" in act
    assert "4 stock levels for two dates, consolidated to 3 lines" in act
    assert "0840002  35 available now" in act  # the later of two counts
    assert "0840001  20 available from 2027-02-01 (prebook)" in act
    assert "0840003  15 available from 2027-03-01" in act
    assert "inventory flags refreshed" in act and "REJECTED" not in text
