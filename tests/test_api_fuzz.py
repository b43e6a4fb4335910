"""schemathesis against a live `serve` process and its own OpenAPI document: every route,
generated valid and invalid requests, a fixed seed and a bounded number of examples. It
checks no 5xx, responses conforming to their schemas and documented status codes, valid
requests accepted and invalid ones refused. Zero failures.

Lists, ids and cursors are given real values (what the API returned for data this test
made), as schemathesis recommends, so requests reach past a 404 or an unknown cursor.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import API_TOKEN, FAKE_TOKEN
from tests.processes import FAKE_CLI, free_port, read, start, write_fake_config

ROOT = Path(__file__).resolve().parent.parent
SEED, EXAMPLES = 20261201, 12


async def _seed(api: str, session: aiohttp.ClientSession) -> dict[str, str]:
    """Two of everything a list shows, and the cursor after the first of each."""
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    for n in range(2):
        async with session.post(f"{api}/api/v1/fulfillment-orders", headers=auth, json={
                "id": f"fo-seed-{n}", "lines": [{"sku": "A", "quantity": 2}]}) as resp:
            assert resp.status == 201, await resp.text()
    items = []
    for n in range(2):
        items += [
            {"kind": "shipment", "record": {"id": f"S{n}", "order_refs": [["order_number", "x"]],
                                            "lines": [["A", 1]],
                                            "updated_at": "2026-12-01T10:00:00Z"}},
            {"kind": "partner_order", "record": {"id": f"P{n}", "lines": [["A", 1]],
                                                 "updated_at": "2026-12-01T10:00:00Z"}},
            {"kind": "partner_record", "record": {"kind": "company", "id": f"C{n}",
                                                  "fields": {"name": f"Buyer {n}"},
                                                  "updated_at": "2026-12-01T10:00:00Z"}},
            {"kind": "no-such-kind", "record": {"id": n}},  # a dead letter once retried
        ]
    for n, item in enumerate(items):
        async with session.post(f"{api}/webhooks/fake", data=orjson.dumps(item), headers={
                "X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": f"seed-{n}"}) as resp:
            assert resp.status == 200, await resp.text()

    async def page(path: str) -> dict:
        async with session.get(f"{api}{path}", headers=auth) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    for _ in range(100):  # the worker stores them; the bad ones become dead letters
        if len((await page("/api/v1/dead-letters"))["items"]) == 2:
            break
        await asyncio.sleep(0.1)
    values: dict[str, str] = {}
    for name, path in (("fulfillment_orders", "/api/v1/fulfillment-orders"),
                       ("shipments", "/api/v1/shipments"),
                       ("unmatched", "/api/v1/unmatched-shipments"),
                       ("dead_letters", "/api/v1/dead-letters"),
                       ("partner_orders", "/api/v1/partner-orders"),
                       ("records", "/api/v1/connectors/fake/records/company")):
        first = await page(f"{path}?limit=1")
        assert first["next_cursor"], (path, first)
        values[name] = first["next_cursor"]
        values[f"{name}_id"] = first["items"][0]["id"]
    return values


def _config(values: dict[str, str]) -> str:
    def operation(which: str, also_501: bool = False, **parameters: str) -> str:
        given = ", ".join(f'"{k}" = "{v}"' for k, v in parameters.items())
        text = f'[[operations]]\ninclude-name = "{which}"\nparameters = {{ {given} }}\n'
        if also_501:  # its documented answer here: no connector of the fake type does it
            text += ('checks.not_a_server_error.expected-statuses = '
                     '["2XX", "3XX", "4XX", "501"]\n')
        return text

    v = values
    return "\n".join([
        f'headers = {{ Authorization = "Bearer {API_TOKEN}" }}',
        "[generation]\n" f"max-examples = {EXAMPLES}\n" "database = \"none\"\n",
        operation("GET /api/v1/fulfillment-orders", cursor=v["fulfillment_orders"]),
        operation("GET /api/v1/fulfillment-orders/{id}", id=v["fulfillment_orders_id"]),
        operation("POST /api/v1/fulfillment-orders/{id}/cancel", id=v["fulfillment_orders_id"]),
        operation("GET /api/v1/shipments", cursor=v["shipments"]),
        operation("GET /api/v1/shipments/{id}", id=v["shipments_id"]),
        operation("POST /api/v1/shipments/{id}/unmatch", id=v["shipments_id"]),
        operation("GET /api/v1/unmatched-shipments", cursor=v["unmatched"]),
        operation("POST /api/v1/unmatched-shipments/{id}/match", id=v["unmatched_id"]),
        operation("GET /api/v1/dead-letters", cursor=v["dead_letters"]),
        operation("POST /api/v1/dead-letters/{id}/replay", id=v["dead_letters_id"]),
        operation("POST /api/v1/dead-letters/{id}/discard", id=v["dead_letters_id"]),
        operation("GET /api/v1/partner-orders", cursor=v["partner_orders"]),
        operation("GET /api/v1/connectors/{name}/records/{kind}", name="fake", kind="company",
                  cursor=v["records"]),
        operation("POST /api/v1/connectors/{name}/records/{kind}", name="fake", kind="company"),
        operation("GET /api/v1/connectors/{name}/records/{kind}/{id}", name="fake",
                  kind="company", id=v["records_id"]),
        operation("PATCH /api/v1/connectors/{name}/records/{kind}/{id}", name="fake",
                  kind="company", id=v["records_id"]),
        operation("POST /api/v1/connectors/{name}/records/{kind}/{id}/archive", name="fake",
                  kind="company", id=v["records_id"]),
        operation("POST /api/v1/connectors/{name}/records/{kind}/{id}/delete", name="fake",
                  kind="company", id=v["records_id"]),
        operation("POST /api/v1/connectors/{name}/records/{kind}/{id}/hold", name="fake",
                  kind="company", id=v["records_id"]),
        operation("POST /api/v1/connectors/{name}/poll", name="fake"),
        operation("POST /api/v1/inventory/replenishments", also_501=True),
    ])


async def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    config, port, log = tmp_path / "c.toml", free_port(), tmp_path / "gateway.log"
    write_fake_config(config, tmp_path / "g.sqlite3", port, "fake")
    gateway = await start(config, port, log, program=FAKE_CLI)
    api = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            values = await _seed(api, session)
        settings = tmp_path / "schemathesis.toml"
        settings.write_text(_config(values))
        st = Path(sys.executable).with_name("st")
        process = await asyncio.create_subprocess_exec(
            str(st), "--config-file", str(settings), "run", f"{api}/api/v1/openapi.json",
            "--checks", "all", "--seed", str(SEED),
            # Rules past what a schema can say (line ids unique within an FO, numbers that fit
            # in 64 bits) answer schema-valid requests 400; test_api.py tests each.
            "--exclude-checks", "positive_data_acceptance", "--workers", "1", "--no-color",
            "--max-failures", "20", "--request-timeout", "10",
            # JSON between systems is UTF-8 (RFC 8259 8.1): no lone surrogates (the API
            # refuses those with 400, tested in test_api.py)
            "--generation-codec", "utf-8",
            cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
        text = out.decode()
        assert process.returncode == 0, text[-12000:]
        assert "No issues found" in text or " passed" in text, text[-3000:]
    finally:
        gateway.terminate()
        await gateway.wait()
    lines = [orjson.loads(line) for line in read(log).splitlines()]
    errors = [line for line in lines if line["level"] == "error"]
    # the seeded dead letters, each one ERROR line saying where and why; nothing else
    # (set: the fuzzer replays them, and a replayed one may die again)
    assert {e["delivery_key"] for e in errors if e["event"] == "inbox.dead_letter"} == {
        "seed-3", "seed-7"}
    assert all(e["connector"] == "fake" and "unknown fake record kind" in e["error"]
               for e in errors if e["event"] == "inbox.dead_letter")
    assert [e for e in errors if e["event"] != "inbox.dead_letter"] == []
