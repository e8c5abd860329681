"""WebAuthn Level 3 client-side rules in WebAuthnClient: credProps reports what was made
(§10.1.3), rp.name is required (§5.4.1), PRF and largeBlob input checks (§10.1.4,
§10.1.5), hints over authenticatorAttachment (§5.8.7), a full key store, enterprise
attestation and attestationFormats."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from fido2.ctap2 import Config, Ctap2

from authenticator import SECURITY_KEY, Authenticator, CtapStatus
from transports.inprocess import InProcessDevice
from transports.pytest_plugin import AuthenticatorFactory
from transports.webauthn import (
    NotAllowedError,
    NotSupportedError,
    OptionsTypeError,
    Trace,
    WebAuthnClient,
    b64url,
)
from transports.webauthn.errors import ERRORS, SyntaxError_

ORIGIN = "https://example.com"
RP_ID = "example.com"


def create_options(
    resident_key: str = "discouraged", extensions: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "rp": {"id": RP_ID, "name": "Example"},
        "user": {"id": b64url(b"alice"), "name": "alice", "displayName": "Alice"},
        "challenge": b64url(b"registration challenge"),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": resident_key},
        "extensions": extensions or {},
    }
    options.update(more)
    return options


def get_options(extensions: dict[str, Any], allow: list[str] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "challenge": b64url(b"authentication challenge"),
        "rpId": RP_ID,
        "extensions": extensions,
    }
    if allow is not None:
        options["allowCredentials"] = [{"type": "public-key", "id": i} for i in allow]
    return options


# -- credProps (§10.1.3) ---------------------------------------------------------------------


@pytest.mark.parametrize("through_device", [False, True])
def test_cred_props_reports_a_discoverable_credential_on_a_passkey_only_profile(
    authenticator_factory: AuthenticatorFactory, through_device: bool
) -> None:
    laptop = authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, InProcessDevice(laptop) if through_device else laptop)
    created = client.create(create_options("discouraged", {"credProps": True}))
    assert created["clientExtensionResults"] == {"credProps": {"rk": True}}
    # ... and it is discoverable indeed: a login without allowCredentials finds it.
    assert client.get(get_options({}))["id"] == created["id"]


def test_cred_props_on_a_security_key_follows_the_rk_option(
    webauthn_client: WebAuthnClient,
) -> None:
    made = webauthn_client.create(create_options("discouraged", {"credProps": True}))
    assert made["clientExtensionResults"] == {"credProps": {"rk": False}}
    with pytest.raises(NotAllowedError):  # not discoverable: nothing without an allow list
        webauthn_client.get(get_options({}))


# -- rp.name (§5.4.1) --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, 5, ["Example"]])
def test_rp_name_is_required_and_a_string(webauthn_client: WebAuthnClient, name: Any) -> None:
    options = create_options()
    if name is None:
        del options["rp"]["name"]
    else:
        options["rp"]["name"] = name
    with pytest.raises(OptionsTypeError, match=r"rp\.name"):
        webauthn_client.create(options)
    assert isinstance(OptionsTypeError("x"), TypeError)


# -- prf (§10.1.4) -----------------------------------------------------------------------------


def test_prf_eval_by_credential_at_registration_is_not_supported(
    webauthn_client: WebAuthnClient,
) -> None:
    by_credential = {"evalByCredential": {b64url(b"id"): {"first": b64url(b"x")}}}
    with pytest.raises(NotSupportedError):
        webauthn_client.create(create_options("required", {"prf": by_credential}))
    # An empty map is no request for anything: allowed.
    empty = webauthn_client.create(create_options("required", {"prf": {"evalByCredential": {}}}))
    assert empty["clientExtensionResults"]["prf"]["enabled"] is True


@pytest.mark.parametrize("key", ["", "not base64url!", "*", "a", "other-credential"])
def test_prf_eval_by_credential_bad_keys_are_syntax_errors(
    webauthn_client: WebAuthnClient, key: str
) -> None:
    created = webauthn_client.create(create_options("required", {"prf": {}}))
    prf = {"evalByCredential": {key: {"first": b64url(b"x")}}}
    with pytest.raises(SyntaxError_) as error:
        webauthn_client.get(get_options({"prf": prf}, [created["id"]]))
    assert error.value.name == "SyntaxError"
    assert ERRORS["SyntaxError"] is SyntaxError_


def test_prf_syntax_error_is_raised_even_without_hmac_secret(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    # A CTAP 2.0 key has no hmac-secret: the input is still checked first.
    client = WebAuthnClient(ORIGIN, authenticator_factory("ctap2.0-key"))
    created = client.create(create_options())
    prf = {"evalByCredential": {b64url(b"elsewhere"): {"first": b64url(b"x")}}}
    with pytest.raises(SyntaxError_):
        client.get(get_options({"prf": prf}, [created["id"]]))
    with pytest.raises(NotSupportedError):  # evalByCredential without allowCredentials
        client.get(get_options({"prf": prf}))


# -- largeBlob (§10.1.5) -------------------------------------------------------------------------


@pytest.mark.parametrize("large_blob", [{"read": True}, {"write": b64url(b"x")}, {"read": False}])
def test_large_blob_read_or_write_at_registration(
    webauthn_client: WebAuthnClient, large_blob: dict[str, Any]
) -> None:
    with pytest.raises(NotSupportedError):
        webauthn_client.create(create_options("required", {"largeBlob": large_blob}))


@pytest.mark.parametrize(
    "large_blob",
    [
        {"support": "preferred"},
        {"support": "required", "read": True},
        {"read": True, "write": b64url(b"x")},
        {"read": False, "write": b64url(b"x")},
    ],
)
def test_large_blob_bad_authentication_inputs(
    webauthn_client: WebAuthnClient, large_blob: dict[str, Any]
) -> None:
    created = webauthn_client.create(
        create_options("required", {"largeBlob": {"support": "required"}})
    )
    with pytest.raises(NotSupportedError):
        webauthn_client.get(get_options({"largeBlob": large_blob}, [created["id"]]))


# -- hints (§5.8.7) ------------------------------------------------------------------------------


def test_hints_take_precedence_over_authenticator_attachment(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    laptop = authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, laptop)
    options = create_options()
    options["authenticatorSelection"]["authenticatorAttachment"] = "cross-platform"
    with pytest.raises(NotAllowedError):  # no hint: the attachment filters the laptop out
        client.create(options)
    hinted = {**options, "hints": ["client-device"]}
    assert client.create(hinted)["authenticatorAttachment"] == "platform"
    agreeing = {**options, "hints": ["security-key"]}  # no conflict: the filter stays
    with pytest.raises(NotAllowedError):
        client.create(agreeing)


# -- a full key store ----------------------------------------------------------------------------


def test_a_full_key_store_is_not_allowed_error(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    client = WebAuthnClient(ORIGIN, authenticator_factory(max_resident_credentials=1))
    first = create_options("required")
    client.create(first)
    second = copy.deepcopy(first)
    second["user"]["id"] = b64url(b"bob")
    with pytest.raises(NotAllowedError) as error:
        client.create(second)
    assert type(error.value) is NotAllowedError  # not ConstraintError (L3 §5.1.3, Chromium)
    assert error.value.status is CtapStatus.KEY_STORE_FULL


# -- enterprise attestation and attestationFormats -----------------------------------------------


@pytest.fixture
def corporate_key() -> Authenticator:
    key = Authenticator(
        config=replace(
            SECURITY_KEY, enterprise_attestation=True, enterprise_rp_ids=("corp.example",)
        ),
        strict=True,
    )
    Config(Ctap2(InProcessDevice(key))).enable_enterprise_attestation()
    return key


def _made(trace: Trace) -> tuple[dict[str, Any], dict[str, Any]]:
    made = [e for e in trace.exchanges if e.command == "MAKE_CREDENTIAL"]
    request, response = made[-1].decoded()
    assert isinstance(request, dict) and isinstance(response, dict)
    return request, response


def test_enterprise_attestation_for_an_rp_the_policy_lists(corporate_key: Authenticator) -> None:
    trace = Trace()
    client = WebAuthnClient(
        "https://shop.example",
        corporate_key,
        trace=trace,
        enterprise_rp_ids=frozenset({"shop.example"}),
    )
    options = create_options(attestation="enterprise")
    options["rp"]["id"] = "shop.example"
    client.create(options)
    request, response = _made(trace)
    assert request["enterpriseAttestation"] == 2  # platform-managed: the browser vouches
    assert response["epAtt"] is True


def test_enterprise_attestation_otherwise_asks_the_authenticators_own_list(
    corporate_key: Authenticator,
) -> None:
    for origin, granted in (("https://corp.example", True), ("https://shop.example", None)):
        trace = Trace()
        client = WebAuthnClient(origin, corporate_key, trace=trace)
        options = create_options(attestation="enterprise")
        options["rp"]["id"] = origin.removeprefix("https://")
        client.create(options)
        request, response = _made(trace)
        assert request["enterpriseAttestation"] == 1  # vendor-facilitated
        assert response.get("epAtt") is granted
    # attestation "direct" never asks for it.
    trace = Trace()
    WebAuthnClient("https://corp.example", corporate_key, trace=trace).create(
        {**create_options(attestation="direct"), "rp": {"id": "corp.example", "name": "Corp"}}
    )
    assert "enterpriseAttestation" not in _made(trace)[0]


def test_no_enterprise_attestation_from_a_key_without_ep(webauthn_client: WebAuthnClient) -> None:
    trace = webauthn_client.trace
    assert trace is not None
    webauthn_client.create(create_options(attestation="enterprise"))
    assert "enterpriseAttestation" not in _made(trace)[0]


def test_attestation_formats_are_passed_as_the_ctap_preference(
    webauthn_client: WebAuthnClient,
) -> None:
    trace = webauthn_client.trace
    assert trace is not None
    formats = ["packed", "none"]
    webauthn_client.create(
        create_options(attestation="direct", attestationFormats=formats, hints=[])
    )
    assert _made(trace)[0]["attestationFormatsPreference"] == formats
    webauthn_client.create(create_options(attestationFormats=formats))  # attestation "none"
    assert "attestationFormatsPreference" not in _made(trace)[0]


# -- discoverable credentials on a protected authenticator ---------------------------------------


def test_a_discoverable_credential_on_a_protected_authenticator_verifies_the_user(
    authenticator_factory: AuthenticatorFactory, authenticator: Authenticator
) -> None:
    from fido2.ctap2.pin import ClientPin

    from transports.webauthn import enter_pin
    from transports.webauthn.checks import assert_flags

    options = create_options("required")
    options["authenticatorSelection"]["userVerification"] = "discouraged"
    laptop = WebAuthnClient(ORIGIN, authenticator_factory("platform"))
    assert_flags(laptop.create(options), uv=True)  # built-in UV, not OPERATION_DENIED

    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin("123456")
    key = WebAuthnClient(ORIGIN, authenticator)
    key.user.then(enter_pin("123456"))
    assert_flags(key.create(options), uv=True)  # the PIN, as Chromium asks for it
    assert [p.kind for p in key.user.prompts] == ["pin"]
    # A non-discoverable credential needs no verification (makeCredUvNotRqd).
    plain = create_options("discouraged")
    plain["authenticatorSelection"]["userVerification"] = "discouraged"
    assert_flags(key.create(plain), uv=False)


def test_resident_key_preferred_on_a_full_key_makes_a_non_discoverable_credential(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    trace = Trace()
    client = WebAuthnClient(ORIGIN, authenticator_factory(max_resident_credentials=1), trace=trace)
    first = client.create(create_options("preferred", {"credProps": True}))
    assert first["clientExtensionResults"] == {"credProps": {"rk": True}}
    second = create_options("preferred", {"credProps": True})
    second["user"]["id"] = b64url(b"bob")
    made = client.create(second)  # remainingDiscoverableCredentials is 0: rk not asked for
    assert made["clientExtensionResults"] == {"credProps": {"rk": False}}
    assert "options" not in _made(trace)[0]
    assert trace.commands().count("GET_INFO") >= 2  # read again for the fresh count
    required = create_options("required")
    required["user"]["id"] = b64url(b"carol")
    with pytest.raises(NotAllowedError):  # required still fails on the full key
        client.create(required)
