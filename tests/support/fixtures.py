"""pytest fixtures for tests that need a moto server and the small world (import them by name)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.tinyworld import World, build_world, env_for, start_moto


@pytest.fixture(scope="module")
def tiny_moto() -> Iterator[str]:
    server, url = start_moto()
    yield url
    server.stop()


def reset_moto(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).read()


@pytest.fixture
def tiny_aws_env(monkeypatch: pytest.MonkeyPatch, tiny_moto: str) -> str:
    """Dummy credentials and the moto endpoint in the environment, as a user would set them."""
    reset_moto(tiny_moto)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for key, value in env_for(tiny_moto).items():
        monkeypatch.setenv(key, value)
    return tiny_moto


@pytest.fixture
def tiny_world(tiny_aws_env: str) -> World:
    """Two Ingresses (shop/web, shop/api), each an ALB whose SG the node SG admits."""
    return build_world(tiny_aws_env, ("web", "api"))
