"""Shared fixtures: a strict authenticator, a manual clock, stores, and python-fido2 clients
over ``InProcessDevice``. Hypothesis profiles: "dev" (default) and "ci" (more examples;
selected by CI=true or HYPOTHESIS_PROFILE)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity
from hypothesis import HealthCheck, settings

from authenticator import Authenticator, ManualClock, MemoryStore, SqliteStore, Store
from transports.inprocess import InProcessDevice

settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ORIGIN = "https://example.com"
RP_ID = "example.com"


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        sqlite = SqliteStore(tmp_path / "store.sqlite")
        yield sqlite
        sqlite.close()


@pytest.fixture
def auth(manual_clock: ManualClock) -> Authenticator:
    return Authenticator(clock=manual_clock, strict=True)


@pytest.fixture
def device(auth: Authenticator) -> InProcessDevice:
    return InProcessDevice(auth)


@pytest.fixture
def ctap2(device: InProcessDevice) -> Ctap2:
    return Ctap2(device)


@pytest.fixture
def client(device: InProcessDevice) -> Fido2Client:
    return Fido2Client(device, DefaultClientDataCollector(ORIGIN))


@pytest.fixture
def server() -> Fido2Server:
    return Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
