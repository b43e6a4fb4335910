"""What declaring the API's shapes costs: checking a fulfillment-order request body and a
list query with today's pydantic declarations (gateway/shapes.py), with the hand-written
checks they replaced (gateway/api.py as of commit BASELINE, loaded from git), and with msgspec
Structs of the same shape, in one run on one core.

    .venv/bin/python bench/shapes.py [--rounds 5] [--n 20000]

The webhook intake does not go through these declarations (each connector checks its own
body in `verify`), so bench/intake.py measures intake; this measures the API's share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.api import new_fulfillment_order  # noqa: E402
from gateway.shapes import FulfillmentOrderQuery, FulfillmentOrderRequest  # noqa: E402

BASELINE = "b3bfdc4"  # the last commit with the hand-written checks

BODY = orjson.dumps({
    "id": "order-1042", "channel": "wholesale", "order_number": "1042",
    "lines": [{"sku": f"SKU-{i}", "quantity": i + 1, "line_id": str(i + 1)} for i in range(5)],
    "ship_to": {"name": "Ada Buyer", "street1": "1 Main St", "city": "Portland",
                "state": "OR", "postal_code": "97201", "country": "US"},
    "custom_fields": {"shipping_notes": "leave at the back", "gift": True},
    "external_refs": [{"kind": "partner_order_id", "value": "PO-77"}]})
QUERY = {"status": "fulfilled", "updated_since": "2026-12-01T10:00:00Z", "limit": "100"}


def baseline_module() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BASELINE}:gateway/api.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("baseline_api")
    exec(compile(source, f"{BASELINE}:gateway/api.py", "exec"), module.__dict__)  # noqa: S102
    return module


class MsLine(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10**9)]
    line_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")] | None = None


class MsRef(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["order_number", "partner_order_id"]
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class MsAddress(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | None = None
    company: Text | None = None
    street1: Text | None = None
    street2: Text | None = None
    street3: Text | None = None
    city: Text | None = None
    state: Text | None = None
    postal_code: Text | None = None
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None
    phone: Text | None = None
    residential: bool | None = None


class MsRequest(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[MsLine], msgspec.Meta(min_length=1, max_length=1000)]
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")] | None = None
    channel: Text | None = None
    order_number: Text | None = None
    ship_to: MsAddress | None = None
    custom_fields: dict[str, str | int | float | bool] = {}
    external_refs: list[MsRef] = []


def per_call_us(call: Any, n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - began) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    old = baseline_module()
    decoder = msgspec.json.Decoder(MsRequest)
    cases = {
        "hand-written checks (baseline)": lambda: old.parse_fulfillment_order(orjson.loads(BODY)),
        "pydantic (gateway/shapes.py)": lambda: new_fulfillment_order(
            FulfillmentOrderRequest.model_validate_json(BODY)),
        "pydantic, validation only": lambda: FulfillmentOrderRequest.model_validate_json(BODY),
        "msgspec, validation only": lambda: decoder.decode(BODY),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            results[name].append(per_call_us(call, args.n))
    print(f"A fulfillment-order request (5 lines, an address, custom fields), CPU per request,"
          f" median of {args.rounds} rounds of {args.n:,} on one core")
    base = statistics.median(results["hand-written checks (baseline)"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:34} {median:7.1f} us   {median / base:5.2f}x the baseline")

    class FakeRequest:
        query = QUERY

    query_cases = {
        "hand-written (baseline)": lambda: (old._limit(FakeRequest), old._since(FakeRequest)),
        "pydantic (gateway/shapes.py)": lambda: FulfillmentOrderQuery.model_validate(QUERY),
    }
    print("A list query (status, updated_since, limit)")
    query_results = {name: statistics.median(per_call_us(call, args.n)
                                             for _ in range(args.rounds))
                     for name, call in query_cases.items()}
    base = query_results["hand-written (baseline)"]
    for name, median in query_results.items():
        print(f"  {name:34} {median:7.1f} us   {median / base:5.2f}x the baseline")


if __name__ == "__main__":
    main()
