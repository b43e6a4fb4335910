"""Config: parsed once, every error names the key, secrets only from the environment. On the
scripted fake connector type; the shipped config.toml is checked in tests/shipstation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as config_mod
from gateway.errors import ConfigError
from tests.conftest import ENV, fake_doc


def parse(doc, env=None):
    return config_mod.parse(doc, ENV if env is None else env)


def base() -> dict:
    return fake_doc(Path("db.sqlite3"), "wms")


def test_missing_variable_names_the_key() -> None:
    env = {k: v for k, v in ENV.items() if k != "FAKE_TOKEN"}
    with pytest.raises(ConfigError, match=r"FAKE_TOKEN \(named by connectors\[0\]\.token_env\)"):
        parse(base(), env)


def test_disabled_connector_needs_no_secrets() -> None:
    doc = base()
    doc["connectors"][0]["enabled"] = False
    cfg = parse(doc, {"GATEWAY_API_TOKENS": "t"})
    assert not cfg.connectors[0].enabled


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["server"].update(port="80"), r"server\.port: Input should be a valid integer,"
     r" got '80'"),
    (lambda d: d["server"].update(port=70000), r"server\.port: .*less than or equal to 65535"),
    (lambda d: d["server"].update(max_body_bytes=0), r"server\.max_body_bytes"),
    (lambda d: d["server"].update(colour="red"), r"server\.colour: unknown key \(known: host,"),
    (lambda d: d["retry"].update(schedule_seconds=[]), r"retry\.schedule_seconds"),
    (lambda d: d["retry"].update(attempts=True), r"retry\.attempts"),
    (lambda d: d["connectors"][0].update(base_url="ftp://x"), r"connectors\[0\]\.base_url"),
    (lambda d: d["connectors"][0].update(poll_interval_minutes=0),
     r"connectors\[0\]\.poll_interval_minutes"),
    (lambda d: d["connectors"].append(dict(d["connectors"][0])), r"connectors\[1\]\.name"),
    # the connector type's own options, declared as a schema
    (lambda d: d["connectors"][0].update(page_sise=100),
     r"connectors\[0\]: unknown key\(s\) page_sise for connector type 'fake'; known: "),
    (lambda d: d["connectors"][0].update(page_size="100"),
     r"connectors\[0\]\.page_size: expected an integer, got '100'"),
    (lambda d: d["connectors"][0].update(page_size=501),
     r"connectors\[0\]\.page_size: must be at most 500"),
    (lambda d: d["connectors"][0].update(page_size=0),
     r"connectors\[0\]\.page_size: must be at least 1"),
    (lambda d: d["connectors"][0].update(id_pattern="(x"),
     r"connectors\[0\]\.id_pattern: not a regular expression"),
    (lambda d: d["connectors"][0].update(sync_orders="yes"),
     r"connectors\[0\]\.sync_orders: expected"),
    (lambda d: d["connectors"][0].update(orders_interval_minutes=True),
     r"connectors\[0\]\.orders_interval_minutes: expected a number"),
    (lambda d: d["connectors"][0].pop("token_env"), r"connectors\[0\]\.token_env: required"),
    (lambda d: d.update(extra={}), r"extra: unknown table or key \(known: server,"),
    (lambda d: d.update(storage={"backend": "mysql"}), r"storage\.backend: Input should be"
     r" 'sqlite' or 'postgresql', got 'mysql'"),
])
def test_errors_name_the_key(mutate, message) -> None:
    doc = base()
    mutate(doc)
    with pytest.raises(ConfigError, match=message):
        parse(doc)


def test_unknown_connector_type_fails_before_start(tmp_path: Path) -> None:
    from gateway.app import Gateway

    doc = base()
    doc["connectors"][0]["type"] = "nosuchpartner"
    with pytest.raises(ConfigError, match=r"connectors\[0\]\.type: no connector type"):
        Gateway(parse(doc))


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config_mod.load(tmp_path / "nope.toml", ENV)
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(bad, ENV)


def with_channel(**channel) -> dict:
    doc = base()
    doc["channels"] = [{"name": "wholesale", **channel}]
    return doc


def with_subscriber(**subscriber) -> dict:
    doc = base()
    doc["subscribers"] = [{"name": "erp", "url": "http://127.0.0.1:9/e",
                           "secret_env": "SUB_SECRET", "events": ["*"], **subscriber}]
    return doc


@pytest.mark.parametrize(("doc", "message"), [
    (with_channel(oms={"connector": "nope"}),
     r"channels\[0\]\.oms\.connector: 'nope' is not an enabled connector"),
    (with_channel(oms={"store_id": 1}), r"channels\[0\]\.oms\.connector: required"),
    (with_channel(oms={"connector": "wms", "delay_minutes": -1}),
     r"channels\[0\]\.oms\.delay_minutes"),
    (with_channel(oms={"connector": "wms", "delay": 5}), r"channels\[0\]\.oms\.delay: unknown key \(known: connector, store_id, delay_minutes\)"),
    (with_channel(invoice_timing="weekly"), r"channels\[0\]\.invoice_timing: Input should be 'on_order_created' or"),
    (with_channel(custom_fields={"notes": "advancedOptions..x"}),
     r"channels\[0\]\.custom_fields\.notes"),
    (with_channel(tags="b2b"), r"channels\[0\]\.tags: Input should be an array, got 'b2b'"),
    (with_channel(internal=True, source_connector="wms"),
     r"channels\[0\]\.source_connector: an internal channel"),
    (with_subscriber(events=["order.shipped"]), r"subscribers\[0\]\.events\[0\]: Input should be .*, got 'order\.shipped'"),
    (with_subscriber(url="ftp://x"), r"subscribers\[0\]\.url"),
    (with_subscriber(secret_env="NOT_SET_ANYWHERE"),
     r"environment variable not set: NOT_SET_ANYWHERE \(named by subscribers\[0\]\.secret_env\)"),
])
def test_channel_and_subscriber_errors_name_the_key(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(doc)


def test_a_channel_parses_as_designed() -> None:
    cfg = parse(with_channel(
        warehouse_group="east", description="d", tags=["b2b"],
        oms={"connector": "wms", "store_id": 7, "delay_minutes": 15},
        push_fulfillment_updates=True, invoice_timing="on_shipment_created",
        custom_fields={"shipping_type": "advancedOptions.customField1"}))
    [channel] = cfg.channels
    assert channel.oms and channel.oms.delay_minutes == 15 and channel.oms.store_id == 7
    assert channel.custom_fields["shipping_type"] == "advancedOptions.customField1"
    assert channel.internal and cfg.channel("wholesale") is channel


def test_a_subscriber_secret_must_be_a_standard_webhooks_secret() -> None:
    from gateway.app import Gateway

    cfg = parse(with_subscriber(), {**ENV, "SUB_SECRET": "not base64 !!"})
    with pytest.raises(ConfigError, match=r"subscribers\[0\]\.secret_env: SUB_SECRET holds"
                       r" something that is not"):
        Gateway(cfg)




def test_every_problem_of_the_file_is_said_at_once() -> None:
    doc = with_subscriber(url="ftp://x", events=[])
    doc["server"] = {"port": 70000, "colour": "red"}
    doc["retry"] = {"jitter": 2}
    doc["channels"] = [{"name": "web", "tags": "b2b"}]
    with pytest.raises(ConfigError) as raised:
        parse(doc)
    said = raised.value.message.split("; ")
    assert [part.split(":")[0] for part in said] == [
        "server.port", "server.colour", "retry.jitter", "channels[0].tags",
        "subscribers[0].url", "subscribers[0].events"], said
