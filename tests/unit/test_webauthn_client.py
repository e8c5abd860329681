"""WebAuthnClient: the browser's algorithms (WebAuthn L3 §5.1.3, §5.1.4) checked against
independent relying parties (py_webauthn, python-fido2's Fido2Server) and the spec's rules
for client data, RP IDs, timeouts, attestation conveyance, UV/rk requirements, errors and
several authenticators."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity
from fido2.webauthn import ResidentKeyRequirement as Fido2ResidentKey
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import Authenticator, CtapStatus
from transports.inprocess import InProcessDevice
from transports.pytest_plugin import AuthenticatorFactory
from transports.webauthn import (
    AbortError,
    EncodingError,
    InvalidStateError,
    NotAllowedError,
    NotSupportedError,
    OptionsTypeError,
    SecurityError,
    WebAuthnClient,
    abort,
    b64url,
    b64url_decode,
    cancel,
    choose_account,
    choose_authenticator,
    client_data_json,
    deny,
    time_out,
    uv_fail,
    wait,
)
from transports.webauthn.checks import (
    assert_attestation,
    assert_counter_increased,
    assert_flags,
    authenticator_data,
    client_data,
)

ORIGIN = "https://example.com"
RP_ID = "example.com"


def registration(**kwargs: Any) -> Any:
    kwargs.setdefault("rp_id", RP_ID)
    kwargs.setdefault("rp_name", "Example")
    kwargs.setdefault("user_name", "alice")
    kwargs.setdefault("supported_pub_key_algs", [COSEAlgorithmIdentifier.ECDSA_SHA_256])
    return generate_registration_options(**kwargs)


def passkey_options(**kwargs: Any) -> Any:
    return registration(
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=kwargs.pop("uv", UserVerificationRequirement.PREFERRED),
        ),
        **kwargs,
    )


def raw_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(options_to_json(registration()))
    options.update(overrides)
    return options


# -- ceremonies against independent relying parties ----------------------------------------------


def test_py_webauthn_registration_and_login(webauthn_client: WebAuthnClient) -> None:
    options = passkey_options()
    response = webauthn_client.create(options_to_json(options))
    assert set(response) == {
        "id",
        "rawId",
        "response",
        "authenticatorAttachment",
        "clientExtensionResults",
        "type",
    }
    assert response["response"]["transports"] == ["usb"]
    assert response["authenticatorAttachment"] == "cross-platform"
    verified = verify_registration_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    assert verified.fmt == "none"  # py_webauthn asks for "none" by default
    previous = 0
    for _ in range(2):
        login = generate_authentication_options(rp_id=RP_ID)
        assertion = webauthn_client.get(options_to_json(login))
        result = verify_authentication_response(
            credential=assertion,
            expected_challenge=login.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=verified.credential_public_key,
            credential_current_sign_count=previous,
        )
        previous = assert_counter_increased(previous, assertion)
        assert result.new_sign_count == previous
        assert b64url_decode(assertion["response"]["userHandle"], "h") == options.user.id


def test_fido2_server_accepts_our_json(webauthn_client: WebAuthnClient) -> None:
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
    user = PublicKeyCredentialUserEntity(id=b"user-1", name="alice", display_name="Alice")
    options, state = server.register_begin(user, resident_key_requirement=Fido2ResidentKey.REQUIRED)
    response = webauthn_client.create(dict(options))  # {"publicKey": {...}} as fido2 emits
    auth_data = server.register_complete(state, response)
    assert auth_data.credential_data is not None
    request, state = server.authenticate_begin([auth_data.credential_data])
    assertion = webauthn_client.get(dict(request))
    credential = server.authenticate_complete(state, [auth_data.credential_data], assertion)
    assert credential.credential_id == auth_data.credential_data.credential_id


def test_allow_list_login_and_public_key(webauthn_client: WebAuthnClient) -> None:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    response = webauthn_client.create(options_to_json(registration()))
    public_key = load_der_public_key(b64url_decode(response["response"]["publicKey"], "spki"))
    assert public_key.key_size == 256  # type: ignore[union-attr]
    assert response["response"]["publicKeyAlgorithm"] == -7
    login = generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(response["id"], "i"))],
    )
    assertion = webauthn_client.get(options_to_json(login))
    assert assertion["id"] == response["id"]
    assert "userHandle" not in assertion["response"]  # a non-discoverable credential


@pytest.mark.parametrize(
    ("alg", "size"),
    [(COSEAlgorithmIdentifier.EDDSA, None), (COSEAlgorithmIdentifier.ECDSA_SHA_512, None)],
)
def test_public_key_for_other_algorithms(
    webauthn_client: WebAuthnClient, alg: COSEAlgorithmIdentifier, size: None
) -> None:
    options = registration(supported_pub_key_algs=[alg, COSEAlgorithmIdentifier.ECDSA_SHA_256])
    response = webauthn_client.create(options_to_json(options))
    verify_registration_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        supported_pub_key_algs=[alg, COSEAlgorithmIdentifier.ECDSA_SHA_256],
    )
    assert "publicKey" in response["response"]


# -- client data --------------------------------------------------------------------------------


def test_client_data_json_is_ccd_to_string() -> None:
    data = client_data_json("webauthn.get", b"\x01\x02", "https://a.example")
    assert data == (
        b'{"type":"webauthn.get","challenge":"AQI","origin":"https://a.example",'
        b'"crossOrigin":false}'
    )
    cross = client_data_json("webauthn.create", b"", "https://a.example", 'https://t"\\\x01.x')
    assert cross.endswith(b',"crossOrigin":true,"topOrigin":"https://t\\"\\\\\\u0001.x"}')
    assert json.loads(cross)["topOrigin"] == 'https://t"\\\x01.x'


def test_cross_origin_iframe(authenticator: Authenticator) -> None:
    client = WebAuthnClient(
        "https://login.example.com", authenticator, top_origin="https://shop.example"
    )
    response = client.create(options_to_json(registration()))
    collected = client_data(response)
    assert collected["crossOrigin"] is True
    assert collected["topOrigin"] == "https://shop.example"
    assert collected["origin"] == "https://login.example.com"


# -- RP ID and origin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "rp_id", "ok"),
    [
        ("https://example.com", "example.com", True),
        ("https://login.example.com", "example.com", True),
        ("https://example.com:8443", "example.com", True),
        ("http://localhost:8000", "localhost", True),
        ("https://example.com", "login.example.com", False),
        ("https://example.com", "evil.com", False),
        ("https://foo.github.io", "github.io", False),  # a public suffix
        ("http://example.com", "example.com", False),  # not a secure context
        ("https://127.0.0.1", "127.0.0.1", False),  # an IP address is no domain
    ],
)
def test_rp_id_must_be_a_registrable_suffix(
    authenticator: Authenticator, origin: str, rp_id: str, ok: bool
) -> None:
    client = WebAuthnClient(origin, authenticator)
    options = options_to_json(registration(rp_id=rp_id))
    if ok:
        assert client.create(options)["type"] == "public-key"
    else:
        with pytest.raises(SecurityError):
            client.create(options)
    assert len(authenticator.store.discoverable(rp_id)) == 0 or ok


def test_rp_id_defaults_to_the_effective_domain(authenticator: Authenticator) -> None:
    import hashlib

    client = WebAuthnClient("https://login.example.com", authenticator)
    options = raw_options()
    del options["rp"]["id"]
    response = client.create(options)
    assert authenticator_data(response).rp_id_hash == hashlib.sha256(b"login.example.com").digest()


# -- malformed options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"challenge": None}, OptionsTypeError),
        ({"challenge": "not base64!"}, EncodingError),
        ({"user": {"id": "", "name": "a", "displayName": "A"}}, OptionsTypeError),
        ({"user": {"id": b64url(bytes(65)), "name": "a", "displayName": "A"}}, OptionsTypeError),
        ({"user": {"id": "AQ", "displayName": "A"}}, OptionsTypeError),
        ({"rp": "example.com"}, OptionsTypeError),
        ({"pubKeyCredParams": [{"type": "password", "alg": -7}]}, NotSupportedError),
        ({"pubKeyCredParams": [{"type": "public-key", "alg": -9999}]}, NotSupportedError),
    ],
)
def test_bad_options_raise_browser_errors(
    webauthn_client: WebAuthnClient, change: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        webauthn_client.create(raw_options(**change))
    assert isinstance(OptionsTypeError(), TypeError)
    webauthn_client.create(raw_options())  # and the next ceremony works


def test_empty_pub_key_cred_params_means_es256(webauthn_client: WebAuthnClient) -> None:
    response = webauthn_client.create(raw_options(pubKeyCredParams=[]))
    assert response["response"]["publicKeyAlgorithm"] == -7


def test_options_json_text_and_wrapped(webauthn_client: WebAuthnClient) -> None:
    text = options_to_json(registration())
    assert webauthn_client.create(text)["type"] == "public-key"
    assert webauthn_client.create({"publicKey": json.loads(text)})["type"] == "public-key"
    with pytest.raises(OptionsTypeError):
        webauthn_client.create("{not json")
    with pytest.raises(OptionsTypeError):
        webauthn_client.create("[1, 2]")


# -- attestation conveyance ---------------------------------------------------------------------


def test_attestation_none_replaces_the_statement(
    webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    response = webauthn_client.create(options_to_json(registration()))
    assert_attestation(response, fmt="none", aaguid=authenticator.config.aaguid, x5c=False)
    direct = webauthn_client.create(
        options_to_json(registration(attestation=AttestationConveyancePreference.DIRECT))
    )
    assert_attestation(direct, fmt="packed", aaguid=authenticator.config.aaguid, x5c=True)


# -- user verification and resident keys ---------------------------------------------------------


def test_resident_key_requirements(webauthn_client: WebAuthnClient) -> None:
    for requirement, expected in (
        (ResidentKeyRequirement.REQUIRED, True),
        (ResidentKeyRequirement.PREFERRED, True),
        (ResidentKeyRequirement.DISCOURAGED, False),
    ):
        options = json.loads(
            options_to_json(
                registration(
                    authenticator_selection=AuthenticatorSelectionCriteria(resident_key=requirement)
                )
            )
        )
        options["extensions"] = {"credProps": True}
        response = webauthn_client.create(options)
        assert response["clientExtensionResults"] == {"credProps": {"rk": expected}}


def test_resident_key_required_but_impossible(authenticator_factory: AuthenticatorFactory) -> None:
    client = WebAuthnClient(ORIGIN, authenticator_factory(resident_keys=False))
    with pytest.raises(NotAllowedError):
        client.create(options_to_json(passkey_options()))


def test_uv_required_without_any_method(webauthn_client: WebAuthnClient) -> None:
    with pytest.raises(NotAllowedError):
        webauthn_client.create(
            options_to_json(passkey_options(uv=UserVerificationRequirement.REQUIRED))
        )


def test_platform_authenticator_verifies_the_user(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    client = WebAuthnClient(ORIGIN, authenticator_factory("platform"))
    options = passkey_options(uv=UserVerificationRequirement.REQUIRED)
    response = client.create(options_to_json(options))
    assert response["authenticatorAttachment"] == "platform"
    assert response["response"]["transports"] == ["internal"]
    assert_flags(response, up=True, uv=True)
    verify_registration_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    client.user.then(uv_fail())
    with pytest.raises(NotAllowedError) as error:
        client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))
    # CTAP 2.1 §6.2.2 step 6.2.3: a failed built-in UV with no PIN -> OPERATION_DENIED.
    assert error.value.status is CtapStatus.OPERATION_DENIED


def test_pin_entry_with_retries(authenticator: Authenticator) -> None:
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    from transports.webauthn import enter_pin, wrong_pin

    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin("123456")
    client = WebAuthnClient(ORIGIN, authenticator)
    client.user.then(wrong_pin(2), enter_pin("123456"))
    options = passkey_options(uv=UserVerificationRequirement.REQUIRED)
    response = client.create(options_to_json(options))  # sees the new PIN without refresh()
    assert_flags(response, up=True, uv=True)
    assert [p.kind for p in client.user.prompts] == ["pin", "pin", "pin"]
    client.user.assert_done()
    with pytest.raises(NotAllowedError):  # the user gives up at the PIN prompt
        client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))
    client.user.then(wrong_pin(3))
    with pytest.raises(NotAllowedError) as error:
        client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))
    assert error.value.status is CtapStatus.PIN_AUTH_BLOCKED


# -- the scripted user --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "status"),
    [
        (deny(), NotAllowedError, CtapStatus.OPERATION_DENIED),
        (time_out(), NotAllowedError, CtapStatus.USER_ACTION_TIMEOUT),
        (cancel(), NotAllowedError, CtapStatus.KEEPALIVE_CANCEL),
        (abort(), AbortError, None),
    ],
)
def test_user_refuses(
    webauthn_client: WebAuthnClient,
    authenticator: Authenticator,
    action: Any,
    error: type[Exception],
    status: CtapStatus | None,
) -> None:
    webauthn_client.user.then(action)
    with pytest.raises(error) as raised:
        webauthn_client.create(options_to_json(passkey_options()))
    assert getattr(raised.value, "status", None) is status
    assert authenticator.store.discoverable(RP_ID) == []
    webauthn_client.create(options_to_json(passkey_options()))  # the next one succeeds
    assert len(authenticator.store.discoverable(RP_ID)) == 1


def test_ceremony_timeout_is_virtual_and_clamped(
    webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    options = raw_options(timeout=1000)  # clamped up to 300 s (UV preferred)
    webauthn_client.user.then(wait(299), deny())
    with pytest.raises(NotAllowedError) as error:
        webauthn_client.create(options)
    assert error.value.status is CtapStatus.OPERATION_DENIED  # the user answered in time
    webauthn_client.user.then(wait(301))
    with pytest.raises(NotAllowedError, match="timed out"):
        webauthn_client.create(raw_options(timeout=1000))
    discouraged = raw_options(timeout=10**9)  # clamped down to 180 s (UV discouraged)
    discouraged["authenticatorSelection"] = {"userVerification": "discouraged"}
    webauthn_client.user.then(wait(181))
    with pytest.raises(NotAllowedError, match="180"):
        webauthn_client.create(discouraged)
    assert webauthn_client.create(raw_options())["type"] == "public-key"


def test_excluded_credential(webauthn_client: WebAuthnClient) -> None:
    first = webauthn_client.create(options_to_json(passkey_options()))
    options = passkey_options(
        exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(first["id"], "i"))]
    )
    with pytest.raises(InvalidStateError):
        webauthn_client.create(options_to_json(options))


def test_choose_account(webauthn_client: WebAuthnClient) -> None:
    handles = []
    for name in ("alice", "bob", "carol"):
        options = passkey_options(user_name=name, user_id=name.encode())
        webauthn_client.create(options_to_json(options))
        handles.append(name.encode())
    seen = set()
    for index in range(3):
        webauthn_client.user.then(choose_account(index))
        response = webauthn_client.get(
            options_to_json(generate_authentication_options(rp_id=RP_ID))
        )
        seen.add(b64url_decode(response["response"]["userHandle"], "h"))
        assert webauthn_client.user.prompts[-1].kind == "account"
        assert len(webauthn_client.user.prompts[-1].options) == 3
    assert seen == set(handles)


# -- several authenticators ----------------------------------------------------------------------


def test_several_authenticators(authenticator_factory: AuthenticatorFactory) -> None:
    key, laptop = authenticator_factory(), authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, [key, laptop])
    client.user.then(choose_authenticator(1))
    on_laptop = client.create(options_to_json(passkey_options()))
    assert on_laptop["authenticatorAttachment"] == "platform"
    assert len(laptop.store.discoverable(RP_ID)) == 1 and key.store.discoverable(RP_ID) == []

    only_platform = raw_options(authenticatorSelection={"authenticatorAttachment": "platform"})
    prompts = len(client.user.prompts)
    assert client.create(only_platform)["authenticatorAttachment"] == "platform"
    assert len(client.user.prompts) == prompts  # one authenticator fits: no choice asked

    on_key = client.create(options_to_json(registration()))  # default: first offered
    assert on_key["authenticatorAttachment"] == "cross-platform"
    login = generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(on_key["id"], "i"))],
    )
    assertion = client.get(options_to_json(login))  # the key that has it answers
    assert assertion["id"] == on_key["id"]

    hinted = raw_options(hints=["client-device"])
    assert client.create(hinted)["authenticatorAttachment"] == "platform"


def test_long_allow_list_is_probed_in_batches(webauthn_client: WebAuthnClient) -> None:
    real = webauthn_client.create(options_to_json(registration()))
    decoys = [PublicKeyCredentialDescriptor(id=bytes([i]) * 40) for i in range(12)]
    allow = [*decoys, PublicKeyCredentialDescriptor(id=b64url_decode(real["id"], "i"))]
    login = generate_authentication_options(rp_id=RP_ID, allow_credentials=allow)
    assert webauthn_client.get(options_to_json(login))["id"] == real["id"]


# -- CtapDevice path ---------------------------------------------------------------------------


def test_any_ctap_device(authenticator: Authenticator) -> None:
    device = InProcessDevice(authenticator)
    client = WebAuthnClient(ORIGIN, device)
    options = passkey_options()
    response = client.create(options_to_json(options))
    verify_registration_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    client.user.then(cancel())
    with pytest.raises(NotAllowedError) as error:
        client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))
    assert error.value.status is CtapStatus.KEEPALIVE_CANCEL
    assert (
        client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))["type"]
        == "public-key"
    )


# -- traces ------------------------------------------------------------------------------------


def test_trace_records_and_redacts(webauthn_client: WebAuthnClient) -> None:
    trace = webauthn_client.trace
    assert trace is not None
    webauthn_client.create(options_to_json(passkey_options()))
    webauthn_client.user.then(deny())
    with pytest.raises(NotAllowedError):
        webauthn_client.get(options_to_json(generate_authentication_options(rp_id=RP_ID)))
    assert trace.commands() == ["GET_INFO", "MAKE_CREDENTIAL", "GET_ASSERTION"]
    text = trace.format()
    assert "GET_ASSERTION -> OPERATION_DENIED" in text
    assert "user: deny" in text
    _, info = trace.exchanges[0].decoded()
    assert info["options"]["pinUvAuthToken"] is True  # an option, not a secret
    request, _ = trace.exchanges[1].decoded()
    assert request["rp"] == {"id": RP_ID, "name": "Example"}


def test_trace_redacts_pin_material(authenticator: Authenticator) -> None:
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    from transports.webauthn import Trace, enter_pin

    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin("123456")
    trace = Trace()
    client = WebAuthnClient(ORIGIN, authenticator, trace=trace)
    client.user.then(enter_pin("123456"))
    client.create(options_to_json(passkey_options(uv=UserVerificationRequirement.REQUIRED)))
    request, _ = trace.exchanges[-1].decoded()
    assert str(request["pinUvAuthParam"]).startswith("<redacted")
    # The clientPIN exchanges themselves are recorded, with their secrets redacted.
    pin_requests = [e.decoded() for e in trace.exchanges if e.command == "CLIENT_PIN"]
    assert [r["subCommand"] for r, _ in pin_requests] == [2, 9]  # keyAgreement, token (§6.5.5)
    key_agreement, token = pin_requests
    assert str(key_agreement[1]["keyAgreement"]).startswith("<redacted")
    assert str(token[0]["pinHashEnc"]).startswith("<redacted")
    assert str(token[1]["pinUvAuthToken"]).startswith("<redacted")
    assert "123456" not in trace.format()


def test_uv_fails_then_pin_fallback(authenticator_factory: AuthenticatorFactory) -> None:
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    from transports.webauthn import enter_pin

    laptop = authenticator_factory("platform", client_pin=True)
    ClientPin(Ctap2(InProcessDevice(laptop))).set_pin("4321")
    client = WebAuthnClient(ORIGIN, laptop)
    client.user.then(uv_fail(), enter_pin("4321"))
    response = client.create(
        options_to_json(passkey_options(uv=UserVerificationRequirement.REQUIRED))
    )
    assert_flags(response, up=True, uv=True)
    assert [p.kind for p in client.user.prompts] == ["presence", "pin"]
    client.user.assert_done()
