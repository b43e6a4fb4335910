"""The shipped config.toml (ShipStation's), ShipStation's declared options, and what its
connector cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as config_mod
from gateway.errors import ConfigError
from tests.processes import ROOT
from tests.shipstation.conftest import SS_ENV, gateway_doc


def parse(doc, env=None):
    return config_mod.parse(doc, SS_ENV if env is None else env)


def base() -> dict:
    return gateway_doc(Path("db.sqlite3"), "http://127.0.0.1:9")


def test_shipped_config_parses_with_its_variables() -> None:
    env = {"GATEWAY_API_TOKENS": "tok-91", "SHIPSTATION_API_KEY": "key-92",
           "SHIPSTATION_API_SECRET": "sec-93", "SHIPSTATION_WEBHOOK_TOKEN": "hook-94",
           "NUORDER_CONSUMER_KEY": "nk-95", "NUORDER_CONSUMER_SECRET": "ns-96",
           "NUORDER_TOKEN": "nt-97", "NUORDER_TOKEN_SECRET": "nts-98",
           "SHOPIFY_ACCESS_TOKEN": "st-99", "SHOPIFY_CLIENT_SECRET": "ss-100",
           "BIGCOMMERCE_ACCESS_TOKEN": "bt-101", "BIGCOMMERCE_CLIENT_SECRET": "bs-102",
           "AMAZON_CLIENT_ID": "ai-103", "AMAZON_CLIENT_SECRET": "as-104",
           "AMAZON_REFRESH_TOKEN": "ar-105"}
    cfg = config_mod.load(ROOT / "config.toml", env)
    assert cfg.channel_for_source("shopify-buyer").oms.connector == "bigcommerce-seller"
    nuorder = next(c for c in cfg.connectors if c.type == "nuorder")
    assert nuorder.settings["sku"] == "upc" and nuorder.settings["mark_processed"] is True
    assert cfg.channel_for_source("nuorder").oms.connector == "shipstation"
    assert cfg.server.max_body_bytes == 1024 * 1024
    assert cfg.connectors[0].poll_interval_minutes == 15
    assert cfg.connectors[0].settings["page_size"] == 500  # a declared default
    assert cfg.retry.schedule_seconds[0] == 5
    assert cfg.secret("SHIPSTATION_API_SECRET") == "sec-93"
    amazon = next(c for c in cfg.connectors if c.type == "amazon_sp")
    assert amazon.settings["location"] == "amazon-us"
    assert not any(v in repr(cfg) for v in env.values())


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["connectors"][0].update(page_sise=100),
     r"connectors\[0\]: unknown key\(s\) page_sise for connector type 'shipstation'; known: "),
    (lambda d: d["connectors"][0].update(page_size=501),
     r"connectors\[0\]\.page_size: must be at most 500"),
    (lambda d: d["connectors"][0].update(rate_limit_per_minute=0),
     r"connectors\[0\]\.rate_limit_per_minute: must be at least 1"),
    (lambda d: d["connectors"][0].update(allowed_resource_origin="https://(x"),
     r"connectors\[0\]\.allowed_resource_origin: not a regular expression"),
    (lambda d: d["connectors"][0].update(shipments_interval_minutes=True),
     r"connectors\[0\]\.shipments_interval_minutes: expected a number"),
    (lambda d: d["connectors"][0].pop("api_key_env"), r"connectors\[0\]\.api_key_env: required"),
])
def test_shipstation_options_are_checked(mutate, message) -> None:
    doc = base()
    mutate(doc)
    with pytest.raises(ConfigError, match=message):
        parse(doc)


def test_missing_variable_names_the_key() -> None:
    env = {k: v for k, v in SS_ENV.items() if k != "SS_SECRET"}
    with pytest.raises(ConfigError, match=r"SS_SECRET \(named by connectors\[0\]\.api_secret_env\)"):
        parse(base(), env)


def test_a_channel_pushing_to_a_connector_that_cannot_take_orders_is_refused() -> None:
    from gateway.app import Gateway

    doc = base()
    doc["channels"] = [{"name": "wholesale", "internal": False, "source_connector": "shipstation",
                        "push_fulfillment_updates": True}]
    with pytest.raises(ConfigError, match=r"cannot take fulfillment updates"):
        Gateway(parse(doc))
