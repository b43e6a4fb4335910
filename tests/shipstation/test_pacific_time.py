"""ShipStation's Pacific timestamps without offset, converted right across both DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.shipstation import normalize
from connectors.shipstation.pacific import pacific_stamp, pacific_to_utc, utc_to_pacific


@pytest.mark.parametrize(("pacific", "utc"), [
    ("2015-06-29T08:46:27.0000000", "2015-06-29T15:46:27+00:00"),   # PDT, UTC-7
    ("2026-01-15T08:00:00.0000000", "2026-01-15T16:00:00+00:00"),   # PST, UTC-8
    ("2026-03-08T01:59:59.0000000", "2026-03-08T09:59:59+00:00"),   # last PST second
    ("2026-03-08T03:00:00.0000000", "2026-03-08T10:00:00+00:00"),   # first PDT second
    ("2026-11-01T00:30:00.0000000", "2026-11-01T07:30:00+00:00"),   # PDT before fall back
    ("2026-11-01T01:30:00.0000000", "2026-11-01T08:30:00+00:00"),   # repeated hour: first
    ("2026-11-01T02:30:00.0000000", "2026-11-01T10:30:00+00:00"),   # PST after fall back
    ("2026-11-01 02:30:00", "2026-11-01T10:30:00+00:00"),           # the filter form
    ("2026-11-01", "2026-11-01T07:00:00+00:00"),                    # shipDate, a date only
])
def test_pacific_to_utc(pacific: str, utc: str) -> None:
    assert pacific_to_utc(pacific) == datetime.fromisoformat(utc)


def test_filters_are_sent_in_pacific_time() -> None:
    assert utc_to_pacific(datetime(2026, 3, 8, 9, 59, 59, tzinfo=UTC)) == "2026-03-08 01:59:59"
    assert utc_to_pacific(datetime(2026, 3, 8, 10, 0, 0, tzinfo=UTC)) == "2026-03-08 03:00:00"
    assert utc_to_pacific(datetime(2026, 11, 1, 9, 30, tzinfo=UTC)) == "2026-11-01 01:30:00"


def test_round_trip_across_a_year() -> None:
    moment = datetime(2026, 1, 1, 0, 0, 17, tzinfo=UTC)
    for _ in range(365 * 4):
        stamp = pacific_stamp(moment)
        back = pacific_to_utc(stamp)
        # Only the repeated hour at fall back cannot round-trip: it reads as its first pass.
        if not stamp.startswith("2026-11-01T01:"):
            assert back == moment, stamp
        moment += timedelta(hours=6)


def test_naive_and_garbage_are_refused() -> None:
    with pytest.raises(ValueError):
        utc_to_pacific(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        pacific_to_utc("yesterday")


def test_normalized_shipment_carries_utc() -> None:
    record = {"shipmentId": 1, "orderId": 5, "orderKey": "fo_1", "orderNumber": "1001",
              "createDate": "2026-03-08T01:30:00.0000000", "voided": True,
              "voidDate": "2026-03-08T03:15:00.0000000", "trackingNumber": "1Z",
              "shipmentItems": [{"sku": "A", "quantity": 2, "orderItemId": 9}]}
    shipment = normalize.shipment("shipstation", record)
    assert shipment.shipped_at == "2026-03-08T09:30:00.000000Z"
    assert shipment.partner_updated_at == "2026-03-08T10:15:00.000000Z"
    assert shipment.status == "voided"
