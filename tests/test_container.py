"""What the Dockerfile runs, checked without a Docker engine: the Python it builds on, the
locked dependencies it installs, and the config it bakes in."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from gateway import config as config_mod
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_image_runs_the_python_ci_runs() -> None:
    [version] = re.findall(r"^FROM python:(\d+\.\d+)-slim$", DOCKERFILE, re.M)
    assert version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_dependencies_are_installed_from_the_lock_before_the_source() -> None:
    lock = DOCKERFILE.index("pip install --require-hashes -r requirements.lock")
    assert lock < DOCKERFILE.index("COPY gateway") < DOCKERFILE.index("pip install --no-deps .")
    locked = {m.lower() for m in re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$",
                                            (ROOT / "requirements.lock").read_text(), re.M)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group().lower()  # type: ignore[union-attr]
        assert name.replace("_", "-") in {n.replace("_", "-") for n in locked}, name


def test_the_baked_in_config_points_at_the_real_partner_and_the_volume() -> None:
    assert "COPY config.container.toml /etc/fulfillment-gateway/config.toml" in DOCKERFILE
    assert 'HEALTHCHECK' in DOCKERFILE and '"fulfillment-gateway", "healthcheck"' in DOCKERFILE
    path = ROOT / "config.container.toml"
    env = {"GATEWAY_API_TOKENS": "t", "SHIPSTATION_API_KEY": "k",
           "SHIPSTATION_API_SECRET": "s", "SHIPSTATION_WEBHOOK_TOKEN": "w"}
    cfg = config_mod.parse(tomllib.loads(path.read_text()), env)
    assert cfg.server.host == "0.0.0.0" and cfg.server.port == 8080
    [volume] = re.findall(r'^VOLUME \["([^"]+)"\]', DOCKERFILE, re.M)
    assert cfg.storage.path.startswith(volume + "/")
    [connector] = cfg.connectors
    assert connector.base_url == "https://ssapi.shipstation.com"
    with pytest.raises(ConfigError, match="GATEWAY_API_TOKENS .*SHIPSTATION_WEBHOOK_TOKEN"):
        config_mod.parse(tomllib.loads(path.read_text()), {})
