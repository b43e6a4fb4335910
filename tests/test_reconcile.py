"""The reconciler's pure rules, directly and as hypothesis properties."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.reconcile import (
    allocate,
    derive_status,
    fulfilled_by_line,
    match_shipment,
    strip_split_suffix,
    supersedes,
)
from gateway.domain.records import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    Shipment,
    ShipmentLine,
)

SKUS = ["A", "B", "C"]


def fo(fo_id: str, seq: int, **lines: int) -> FulfillmentOrder:
    return FulfillmentOrder(fo_id, seq, tuple(
        FulfillmentOrderLine(str(i), sku, qty) for i, (sku, qty) in enumerate(lines.items(), 1)))


def shipment(ext: str, at: str, status: str = "shipped", **lines: int) -> Shipment:
    return Shipment(source="p", external_id=ext, id=ext, order_refs=(), status=status,
                    partner_updated_at=at, shipped_at=at,
                    lines=tuple(ShipmentLine(sku, q) for sku, q in lines.items()))


def test_split_suffix() -> None:
    assert strip_split_suffix("1001-1") == "1001"
    assert strip_split_suffix("1001-12") == "1001"
    assert strip_split_suffix("AB-2024-3") == "AB-2024"
    assert strip_split_suffix("1001") is None
    assert strip_split_suffix("1001-") is None


def test_matching_precedence() -> None:
    refs = (OrderRef("order_key", "fo_1"), OrderRef("order_number", "1001-2"))
    by_ref = {("order_number", "1001"): ["fo_2"]}
    assert match_shipment(refs, {"fo_1"}, by_ref).fo_ids == ("fo_1",)
    m = match_shipment(refs, set(), by_ref)
    assert (m.fo_ids, m.rule) == (("fo_2",), "split_suffix")
    exact = {("order_number", "1001-2"): ["fo_3"], **by_ref}
    assert match_shipment(refs, set(), exact).fo_ids == ("fo_3",)
    m = match_shipment(refs, set(), {("order_number", "1001"): ["fo_2", "fo_4"]})
    assert not m.matched and m.reason == "ambiguous_split_reference"
    assert m.candidates == ("fo_2", "fo_4")
    assert match_shipment((), set(), {}).reason == "no_reference"


def test_merge_fills_oldest_first_and_keeps_overshipment() -> None:
    older, newer = fo("old", 1, A=3), fo("new", 2, A=2, B=1)
    s = shipment("s1", "2026-01-01T00:00:00.000000Z", A=6, B=1)
    allocations, overshipped = allocate([newer, older], [(s, ["new", "old"])])
    assert fulfilled_by_line(older, allocations) == {"1": 3}
    assert fulfilled_by_line(newer, allocations) == {"1": 2, "2": 1}
    assert overshipped == {"s1": {"A": 1}}
    assert derive_status(older, allocations) == "fulfilled"


def test_void_releases_and_cancel_wins() -> None:
    order = fo("f", 1, A=2)
    s = shipment("s1", "t1", status="voided", A=2)
    allocations, _ = allocate([order], [(s, ["f"])])
    assert allocations == [] and derive_status(order, allocations) == "unfulfilled"
    cancelled = FulfillmentOrder("f", 1, order.lines, cancelled=True)
    assert derive_status(cancelled, allocations) == "cancelled"


def test_newer_version_wins_never_older() -> None:
    shipped = shipment("s1", "2026-01-01T00:00:00.000000Z", A=1)
    voided = shipment("s1", "2026-01-02T00:00:00.000000Z", status="voided", A=1)
    assert supersedes(voided, shipped) and not supersedes(shipped, voided)
    assert not supersedes(shipped, shipped)
    same_time_void = shipment("s1", shipped.partner_updated_at, status="voided", A=1)
    assert supersedes(same_time_void, shipped) and not supersedes(shipped, same_time_void)


# properties

versions = st.builds(
    lambda ext, t, status, a, b: shipment(f"s{ext}", f"2026-01-0{t}T00:00:00.000000Z", status,
                                          **{k: v for k, v in {"A": a, "B": b}.items() if v}),
    st.integers(1, 4), st.integers(1, 5), st.sampled_from(["shipped", "delivered", "voided"]),
    st.integers(0, 6), st.integers(0, 6))
orders = st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8)), min_size=1, max_size=3)


def replay(events: list[Shipment]) -> dict[str, Shipment]:
    """What storage keeps: the latest version per shipment, by `supersedes`."""
    latest: dict[str, Shipment] = {}
    for event in events:
        if supersedes(event, latest.get(event.external_id)):
            latest[event.external_id] = event
    return latest


def outcome(fos: list[FulfillmentOrder], events: list[Shipment]) -> tuple:
    latest = replay(events)
    ids = [f.id for f in fos]
    allocations, overshipped = allocate(fos, [(s, ids) for s in latest.values()])
    return (sorted((a.shipment_id, a.fo_id, a.line_id, a.quantity) for a in allocations),
            overshipped, [derive_status(f, allocations) for f in fos])


@settings(max_examples=300, deadline=None)
@given(orders, st.lists(versions, max_size=8), st.randoms(use_true_random=False),
       st.lists(st.integers(0, 7), max_size=6))
def test_any_order_and_duplication_gives_the_same_result(order_lines, events, rng, dupes) -> None:
    fos = [fo(f"fo{i}", i, A=a, B=b) for i, (a, b) in enumerate(order_lines)]
    expected = outcome(fos, events)
    shuffled = list(events) + [events[i] for i in dupes if i < len(events)]
    rng.shuffle(shuffled)
    assert outcome(fos, shuffled) == expected


@settings(max_examples=300, deadline=None)
@given(orders, st.lists(versions, max_size=8))
def test_allocation_never_exceeds_requested_nor_goes_negative(order_lines, events) -> None:
    fos = [fo(f"fo{i}", i, A=a, B=b) for i, (a, b) in enumerate(order_lines)]
    latest = replay(events)
    allocations, overshipped = allocate(fos, [(s, [f.id for f in fos]) for s in latest.values()])
    for f in fos:
        done = fulfilled_by_line(f, allocations)
        for line in f.lines:
            assert 0 <= done[line.line_id] <= line.requested
    # Nothing shipped is lost: allocated + overshipped == shipped, per live shipment and SKU.
    for s in latest.values():
        if s.status == "voided":
            continue
        for line in s.lines:
            allocated = sum(a.quantity for a in allocations
                            if a.shipment_id == s.id and a.sku == line.sku)
            assert allocated + overshipped.get(s.id, {}).get(line.sku, 0) == line.quantity


def test_status_sequence_for_the_golden_split() -> None:
    order = fo("f", 1, A=10)
    first = shipment("1001-1", "2026-01-01T00:00:00.000000Z", A=6)
    second = shipment("1001-2", "2026-01-01T00:00:05.000000Z", A=4)
    statuses = []
    for shipped in itertools.accumulate([[first], [second]]):
        allocations, _ = allocate([order], [(s, ["f"]) for s in shipped])
        statuses.append(derive_status(order, allocations))
    assert statuses == ["partially_fulfilled", "fulfilled"]
