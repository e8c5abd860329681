"""The assertion helpers fail when they should, with messages that say what was expected;
minPinLength through WebAuthnClient (CTAP 2.1 §12.4); the plugin's webauthn_client_factory
and fidoemu_clock fixtures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fido2.ctap2 import Config, Ctap2

from authenticator import Authenticator, ManualClock
from authenticator.config import FIDOEMU_AAGUID
from transports.inprocess import InProcessDevice
from transports.pytest_plugin import AuthenticatorFactory, ClientFactory
from transports.webauthn import Trace, WebAuthnClient, b64url, deny
from transports.webauthn.checks import (
    assert_attestation,
    assert_counter_increased,
    assert_flags,
    authenticator_data,
)

ORIGIN = "https://example.com"
RP_ID = "example.com"


def create_options(attestation: str = "direct", **extensions: Any) -> dict[str, Any]:
    return {
        "rp": {"id": RP_ID, "name": "Example"},
        "user": {"id": b64url(b"alice"), "name": "alice", "displayName": "Alice"},
        "challenge": b64url(b"registration challenge"),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "discouraged"},
        "attestation": attestation,
        "extensions": extensions,
    }


LOGIN: dict[str, Any] = {
    "challenge": b64url(b"login"),
    "rpId": RP_ID,
    "userVerification": "discouraged",
}


# -- assertion helpers: the failing side ---------------------------------------------------------


def test_assert_flags_names_each_wrong_flag(webauthn_client: WebAuthnClient) -> None:
    response = webauthn_client.create(create_options())
    assert_flags(response, up=True, uv=False, be=False, bs=False)
    with pytest.raises(AssertionError, match=r"UV=clear \(expected set\)"):
        assert_flags(response, uv=True)
    with pytest.raises(AssertionError) as error:
        assert_flags(response, up=False, be=True)
    assert str(error.value) == (
        "authenticator data flags: UP=set (expected clear), BE=clear (expected set)"
    )


def test_assert_counter_increased_fails_on_a_stalled_or_lower_counter(
    webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    webauthn_client.create(create_options())
    first = webauthn_client.get(LOGIN)
    count = authenticator_data(first).sign_count
    assert assert_counter_increased(count - 1, first) == count
    with pytest.raises(AssertionError, match=rf"counter {count} is not greater than {count}"):
        assert_counter_increased(count, first)
    with pytest.raises(AssertionError, match="is not greater than 99"):
        assert_counter_increased(99, first)
    assert authenticator.faults is not None
    authenticator.faults.sign_count = 0
    assert assert_counter_increased(0, webauthn_client.get(LOGIN)) == 0  # both 0: no counter
    with pytest.raises(AssertionError, match="counter 0 is not greater than 3"):
        assert_counter_increased(3, webauthn_client.get(LOGIN))


def test_assert_attestation_reports_every_mismatch(webauthn_client: WebAuthnClient) -> None:
    direct = webauthn_client.create(create_options("direct"))
    assert_attestation(direct, fmt="packed", aaguid=FIDOEMU_AAGUID, x5c=True)
    assert_attestation(direct, aaguid=uuid.UUID(bytes=FIDOEMU_AAGUID))
    other = uuid.UUID(int=7)
    with pytest.raises(AssertionError) as error:
        assert_attestation(direct, fmt="none", aaguid=other, x5c=False)
    message = str(error.value)
    assert message.startswith("attestation: fmt 'packed' (expected 'none')")
    assert f"(expected {other})" in message
    assert message.endswith("x5c present")
    anonymized = webauthn_client.create(create_options("none"))
    with pytest.raises(AssertionError, match="x5c missing"):
        assert_attestation(anonymized, x5c=True)


# -- minPinLength ---------------------------------------------------------------------------


def test_min_pin_length_reaches_listed_rps_only(authenticator: Authenticator) -> None:
    Config(Ctap2(InProcessDevice(authenticator))).set_min_pin_length(
        min_pin_length=6, rp_ids=[RP_ID]
    )
    listed = WebAuthnClient(ORIGIN, authenticator).create(create_options(minPinLength=True))
    assert authenticator_data(listed).extensions == {"minPinLength": 6}
    assert listed["clientExtensionResults"] == {}  # an authenticator output only

    other = WebAuthnClient("https://other.example", authenticator)
    options = create_options(minPinLength=True)
    options["rp"]["id"] = "other.example"
    assert authenticator_data(other.create(options)).extensions == {}
    unasked = WebAuthnClient(ORIGIN, authenticator).create(create_options())
    assert authenticator_data(unasked).extensions == {}


# -- plugin fixtures ---------------------------------------------------------------------------


def test_webauthn_client_factory_shares_user_and_trace(
    webauthn_client_factory: ClientFactory,
    authenticator_factory: AuthenticatorFactory,
    fidoemu_trace: Trace,
) -> None:
    first, second = authenticator_factory(), authenticator_factory("platform")
    client = webauthn_client_factory("https://login.example.com", first, second)
    assert client.origin == "https://login.example.com"
    assert client.trace is fidoemu_trace
    assert [p.name for p in client.ports] == ["authenticator 0", "authenticator 1"]
    options = create_options()
    options["rp"]["id"] = "example.com"  # a registrable suffix of login.example.com
    options["authenticatorSelection"] = {"authenticatorAttachment": "platform"}
    assert client.create(options)["authenticatorAttachment"] == "platform"
    assert "MAKE_CREDENTIAL" in fidoemu_trace.commands()
    again = webauthn_client_factory(ORIGIN, first, user=client.user)
    again.user.then(deny())  # the same scripted user drives both
    assert client.user is again.user
    isolated = webauthn_client_factory(ORIGIN, first, trace=None)
    assert isolated.trace is None


def test_fidoemu_clock_drives_every_fixture_authenticator(
    authenticator: Authenticator,
    authenticator_factory: AuthenticatorFactory,
    fidoemu_clock: ManualClock,
) -> None:
    another = authenticator_factory()
    assert authenticator.context.clock is fidoemu_clock
    assert another.context.clock is fidoemu_clock
    start = fidoemu_clock.now()
    fidoemu_clock.advance(30)
    assert authenticator.context.clock.now() == start + 30


# -- deterministic mode and its one exception ---------------------------------------------------


@pytest.mark.parametrize("algorithm", [-7, -257])
def test_seeded_runs_are_identical_except_rsa_keys(algorithm: int) -> None:
    """docs/harness.md: RS256 keys cannot be seeded (pyca/cryptography); all else can."""
    from authenticator import SeededEntropy

    options = create_options()
    options["pubKeyCredParams"] = [{"type": "public-key", "alg": algorithm}]
    runs = [
        WebAuthnClient(ORIGIN, Authenticator(entropy=SeededEntropy(7))).create(options)
        for _ in range(2)
    ]
    assert runs[0]["id"] == runs[1]["id"]
    same_key = runs[0]["response"]["publicKey"] == runs[1]["response"]["publicKey"]
    assert same_key is (algorithm != -257)
    if algorithm != -257:
        assert runs[0] == runs[1]
