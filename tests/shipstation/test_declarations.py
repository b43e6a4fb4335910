"""What ShipStation declares to the core: every key of the API's declared address maps to
one of its fields, and its webhook's token parameter is in the OpenAPI document."""

from __future__ import annotations

from connectors.shipstation.push import ADDRESS_FIELDS, address
from gateway.shapes import ADDRESS_FIELDS as DECLARED
from tests.shipstation.conftest import ShipStationGateway


def test_every_declared_address_key_maps_to_a_shipstation_field() -> None:
    assert set(DECLARED) == set(ADDRESS_FIELDS)
    full = {key: "x" for key in DECLARED}
    assert set(address(full)) == set(ADDRESS_FIELDS.values())


async def test_the_document_names_the_webhook_token(gw: ShipStationGateway) -> None:
    document = await gw.call("GET", "/api/v1/openapi.json")
    hook = document["paths"]["/webhooks/{connector}"]["post"]
    [token] = [p for p in hook["parameters"] if p["name"] == "token"]
    assert token["in"] == "query" and "ShipStation" in token["description"]
