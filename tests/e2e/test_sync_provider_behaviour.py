"""Provider behaviour a relying party sees (issue 5): the UV rule of each provider, passkeys
made with userVerification "discouraged", largeBlob on iCloud Keychain, PRF secrets across a
CXF export and import, BS at registration from the device's state, Bitwarden's stored
non-discoverable passkeys, the Signal API's effect on unlisted credentials, per-pair delays
and clock skew. Every ceremony is checked by python-fido2's Fido2Server and py_webauthn."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fido2 import cbor
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response

from authenticator import CounterMode
from transports.inprocess import InProcessDevice
from transports.sync import (
    BITWARDEN,
    GOOGLE_PASSWORD_MANAGER,
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    PROVIDERS,
    BackupState,
    Cloud,
    Device,
    ProviderProfile,
    SignalEffect,
    SignalOutcome,
)
from transports.sync.cxf import CxfError
from transports.sync.providers import ProviderClient
from transports.webauthn import WebAuthnClient, approve, b64url
from transports.webauthn.trace import Trace

ORIGIN = "https://example.com"
RP_ID = "example.com"
REQUIRED, PREFERRED, DISCOURAGED = (
    UserVerificationRequirement.REQUIRED,
    UserVerificationRequirement.PREFERRED,
    UserVerificationRequirement.DISCOURAGED,
)


@dataclass
class Registered:
    credential: AttestedCredentialData
    public_key: bytes
    aaguid: uuid.UUID
    user_verified: bool
    backed_up: bool
    extensions: Mapping[str, Any]


@dataclass
class SignedIn:
    credential_id: bytes
    user_verified: bool
    backed_up: bool
    extensions: Mapping[str, Any]


class Client:
    """A client for one device: the provider's own platform (``ProviderClient``) or a plain
    CTAP client (python-fido2's ``Fido2Client`` on ``device.authenticator``)."""

    def __init__(self, device: Device, *, plain: bool = False) -> None:
        self.device = device
        self.plain = plain

    def make_credential(self, options: PublicKeyCredentialCreationOptions) -> Any:
        if self.plain:
            return _plain(self.device).make_credential(options)
        return ProviderClient(self.device, ORIGIN).make_credential(options)

    def get_assertion(self, options: PublicKeyCredentialRequestOptions) -> Any:
        if self.plain:
            return _plain(self.device).get_assertion(options)
        return ProviderClient(self.device, ORIGIN).get_assertion(options)


def _plain(device: Device) -> Fido2Client:
    return Fido2Client(InProcessDevice(device.authenticator), DefaultClientDataCollector(ORIGIN))


class RelyingParty:
    def __init__(self) -> None:
        self.server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
        self.public_keys: dict[bytes, bytes] = {}
        self.credentials: dict[bytes, AttestedCredentialData] = {}

    def register(
        self,
        client: Client,
        user_id: bytes = b"alice",
        *,
        uv: UserVerificationRequirement = PREFERRED,
        rk: ResidentKeyRequirement = ResidentKeyRequirement.REQUIRED,
        extensions: Mapping[str, Any] | None = None,
    ) -> Registered:
        name = user_id.decode()
        options, state = self.server.register_begin(
            PublicKeyCredentialUserEntity(id=user_id, name=name, display_name=name.title()),
            resident_key_requirement=rk,
            user_verification=uv,
        )
        public = options.public_key
        if extensions is not None:
            public = replace(public, extensions=dict(extensions))
        response = client.make_credential(public)
        auth_data = self.server.register_complete(state, response)
        assert auth_data.credential_data is not None
        verified = verify_registration_response(
            credential=json.dumps(dict(response)),
            expected_challenge=public.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            require_user_verification=uv is REQUIRED,
        )
        assert verified.user_verified is auth_data.is_user_verified()
        assert verified.credential_backed_up is auth_data.is_backed_up()
        credential_id = verified.credential_id
        self.public_keys[credential_id] = verified.credential_public_key
        self.credentials[credential_id] = auth_data.credential_data
        return Registered(
            auth_data.credential_data,
            verified.credential_public_key,
            uuid.UUID(verified.aaguid),
            verified.user_verified,
            verified.credential_backed_up,
            dict(response.client_extension_results or {}),
        )

    def login(
        self,
        client: Client,
        allow: list[Registered] | None = None,
        *,
        uv: UserVerificationRequirement = PREFERRED,
        extensions: Mapping[str, Any] | None = None,
    ) -> SignedIn:
        options, state = self.server.authenticate_begin(
            [r.credential for r in allow] if allow else None, user_verification=uv
        )
        public = options.public_key
        if extensions is not None:
            public = replace(public, extensions=dict(extensions))
        assertion = client.get_assertion(public).get_response(0)
        self.server.authenticate_complete(state, list(self.credentials.values()), assertion)
        credential_id = assertion.raw_id
        result = verify_authentication_response(
            credential=json.dumps(dict(assertion)),
            expected_challenge=public.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=self.public_keys[credential_id],
            credential_current_sign_count=0,
            require_user_verification=uv is REQUIRED,
        )
        assert result.new_sign_count == 0
        data = AuthenticatorData(assertion.response.authenticator_data)
        assert result.user_verified is data.is_user_verified()
        return SignedIn(
            credential_id,
            result.user_verified,
            result.credential_backed_up,
            dict(assertion.client_extension_results or {}),
        )

    def cannot_login(self, client: Client, allow: list[Registered] | None = None) -> bool:
        try:
            self.login(client, allow)
        except ClientError:
            return True
        return False


@pytest.fixture
def cloud() -> Cloud:
    return Cloud(strict=True)


@pytest.fixture
def rp() -> RelyingParty:
    return RelyingParty()


# -- 1. user verification ------------------------------------------------------------------

# (provider, has_biometrics) -> UV for required, preferred, discouraged (reference §0, §1.2).
UV_RULES = [
    (ICLOUD_KEYCHAIN, True, (True, True, True)),  # iOS always verifies [S16]
    (ICLOUD_KEYCHAIN, False, (True, True, True)),  # the passcode
    (GOOGLE_PASSWORD_MANAGER, True, (True, True, False)),  # GpmWillDoUserVerification [S5]
    (GOOGLE_PASSWORD_MANAGER, False, (True, False, False)),  # Linux: the GPM PIN if required
    (ONEPASSWORD, True, (True, True, True)),  # the extension claims UV [S16]
    (BITWARDEN, False, (True, True, True)),  # [S8]
]


@pytest.mark.parametrize(
    ("provider", "has_biometrics", "expected"),
    UV_RULES,
    ids=[f"{p.name}-{'bio' if b else 'nobio'}" for p, b, _ in UV_RULES],
)
def test_uv_rule_per_provider_at_registration_and_sign_in(
    cloud: Cloud,
    provider: ProviderProfile,
    has_biometrics: bool,
    expected: tuple[bool, bool, bool],
) -> None:
    device = cloud.account("a", provider=provider).device("d", has_biometrics=has_biometrics)
    client = Client(device)
    for index, (uv, verified) in enumerate(
        zip((REQUIRED, PREFERRED, DISCOURAGED), expected, strict=True)
    ):
        rp = RelyingParty()
        registration = rp.register(client, f"user{index}".encode(), uv=uv)
        assert registration.user_verified is verified, uv
        assert rp.login(client, [registration], uv=uv).user_verified is verified, uv
        assert rp.login(client, uv=uv).user_verified is verified, uv  # discoverable


@pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=list(PROVIDERS))
def test_discoverable_passkey_with_uv_discouraged_is_created(
    cloud: Cloud, rp: RelyingParty, provider: ProviderProfile
) -> None:
    """residentKey "required" + userVerification "discouraged": every provider makes the
    passkey (UV=0 where the provider skips UV, UV=1 where it always verifies), instead of
    CTAP's makeCredUvNotRqd refusal (OPERATION_DENIED)."""
    device = cloud.account("a", provider=provider).device("d")
    registration = rp.register(Client(device), uv=DISCOURAGED)
    assert registration.user_verified is provider.will_verify("discouraged")
    assert registration.aaguid == provider.aaguid
    login = rp.login(Client(device), uv=DISCOURAGED)  # discoverable: it is a passkey
    assert login.credential_id == registration.credential.credential_id
    assert [c.discoverable for c in device.passkeys()] == [True]


@pytest.mark.parametrize("provider", [ICLOUD_KEYCHAIN, ONEPASSWORD, BITWARDEN])
def test_plain_ctap_clients_see_always_verifying_providers(
    cloud: Cloud, rp: RelyingParty, provider: ProviderProfile
) -> None:
    """Without the provider's platform, the keychain reports alwaysUv: a CTAP client
    verifies even when the RP discourages it, so the passkey is still made (UV=1)."""
    device = cloud.account("a", provider=provider).device("d")
    registration = rp.register(Client(device, plain=True), uv=DISCOURAGED)
    assert registration.user_verified
    assert rp.login(Client(device, plain=True), uv=DISCOURAGED).user_verified


@pytest.mark.parametrize(
    ("provider", "attachment"),
    [
        (ICLOUD_KEYCHAIN, "platform"),
        (BITWARDEN, "cross-platform"),  # historically (#6963)
        (GOOGLE_PASSWORD_MANAGER.with_(attachment=None), None),  # missing (Bitwarden #7141)
    ],
    ids=["platform", "cross-platform", "missing"],
)
def test_provider_client_reports_the_provider_attachment(
    cloud: Cloud, provider: ProviderProfile, attachment: str | None
) -> None:
    device = cloud.account("a", provider=provider).device("d")
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u", name="u", display_name="U"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    response = ProviderClient(device, ORIGIN).make_credential(options.public_key)
    server.register_complete(state, response)
    assert dict(response).get("authenticatorAttachment") == attachment
    request, _ = server.authenticate_begin()
    assertion = ProviderClient(device, ORIGIN).get_assertion(request.public_key).get_response(0)
    assert assertion.raw_id == response.raw_id
    assert dict(assertion).get("authenticatorAttachment") == attachment


# -- 2. largeBlob on iCloud Keychain ---------------------------------------------------------


def test_icloud_large_blob_write_and_read_stay_on_the_device(
    cloud: Cloud, rp: RelyingParty
) -> None:
    account = cloud.account("a", provider=ICLOUD_KEYCHAIN)
    phone, laptop = account.device("phone"), account.device("laptop")
    registration = rp.register(
        Client(phone, plain=True), extensions={"largeBlob": {"support": "required"}}
    )
    assert registration.extensions["largeBlob"] == {"supported": True}
    written = rp.login(
        Client(phone, plain=True), [registration], extensions={"largeBlob": {"write": b"ticket"}}
    )
    assert written.extensions["largeBlob"] == {"written": True}
    read = rp.login(
        Client(phone, plain=True), [registration], extensions={"largeBlob": {"read": True}}
    )
    assert websafe_decode(read.extensions["largeBlob"]["blob"]) == b"ticket"
    account.sync()
    # The passkey syncs; the blob array is the phone's own (authenticatorLargeBlobs).
    elsewhere = rp.login(
        Client(laptop, plain=True), [registration], extensions={"largeBlob": {"read": True}}
    )
    assert elsewhere.credential_id == registration.credential.credential_id
    assert not elsewhere.extensions["largeBlob"].get("blob")


def test_icloud_large_blob_through_webauthn_client_uses_a_built_in_uv_token(
    cloud: Cloud, rp: RelyingParty
) -> None:
    """The browser's path: WebAuthnClient gets the lbw token from the device's built-in UV
    (clientPIN getPinUvAuthTokenUsingUvWithPermissions, CTAP 2.1 §6.5.5.7.3), no PIN."""
    account = cloud.account("a", provider=ICLOUD_KEYCHAIN)
    phone, laptop = account.device("phone"), account.device("laptop")
    client = WebAuthnClient(ORIGIN, phone.authenticator, trace=Trace())
    options, state = rp.server.register_begin(
        PublicKeyCredentialUserEntity(id=b"alice", name="alice", display_name="Alice"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    created = client.create(
        {**dict(options.public_key), "extensions": {"largeBlob": {"support": "required"}}}
    )
    assert created["clientExtensionResults"] == {"largeBlob": {"supported": True}}
    allow = [{"type": "public-key", "id": created["id"]}]
    challenge = b64url(b"a challenge of sixteen bytes or more")
    client.user.then(approve())  # Face ID for the token
    written = client.get(
        {
            "challenge": challenge,
            "rpId": RP_ID,
            "allowCredentials": allow,
            "extensions": {"largeBlob": {"write": b64url(b"boarding pass")}},
        }
    )
    assert written["clientExtensionResults"] == {"largeBlob": {"written": True}}
    client.user.assert_done()
    assert client.trace is not None
    tokens = [
        e.decoded()[0]
        for e in client.trace.exchanges
        if e.command == "CLIENT_PIN" and e.status == "OK"
    ]
    assert [(t["subCommand"], t.get("permissions")) for t in tokens][-1] == (0x06, 0x12)  # ga|lbw
    read = client.get(
        {
            "challenge": challenge,
            "rpId": RP_ID,
            "allowCredentials": allow,
            "extensions": {"largeBlob": {"read": True}},
        }
    )
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": b64url(b"boarding pass")}}
    credential = rp.server.register_complete(state, created).credential_data
    assert credential is not None
    rp.credentials[credential.credential_id] = credential
    registration = Registered(credential, b"", ICLOUD_KEYCHAIN.aaguid, True, True, {})
    rp.public_keys[credential.credential_id] = cbor.encode(dict(credential.public_key))
    by_fido2 = rp.login(
        Client(phone, plain=True), [registration], extensions={"largeBlob": {"read": True}}
    )
    assert websafe_decode(by_fido2.extensions["largeBlob"]["blob"]) == b"boarding pass"
    account.sync()
    elsewhere = rp.login(
        Client(laptop, plain=True), [registration], extensions={"largeBlob": {"read": True}}
    )
    assert not elsewhere.extensions["largeBlob"].get("blob")


# -- 3. CXF keeps PRF secrets -----------------------------------------------------------------

SALT = bytes(range(32))


def _prf(result: SignedIn) -> bytes:
    output = websafe_decode(result.extensions["prf"]["results"]["first"])  # toJSON form
    assert len(output) == 32
    return output


def test_cxf_carries_prf_secrets_so_prf_outputs_survive_icloud_to_gpm(
    cloud: Cloud, rp: RelyingParty
) -> None:
    iphone = cloud.account("a@icloud", provider=ICLOUD_KEYCHAIN).device("iphone")
    registration = rp.register(Client(iphone), extensions={"prf": {}})
    assert registration.extensions["prf"]["enabled"] is True
    prf = {"prf": {"eval": {"first": SALT}}}
    before = rp.login(Client(iphone), [registration], uv=REQUIRED, extensions=prf)

    exported = iphone.export_cxf()
    passkey = exported.document["accounts"][0]["items"][0]["credentials"][0]
    hmac_credentials = passkey["fido2Extensions"]["hmacCredentials"]
    assert hmac_credentials["algorithm"] == "hmac-sha256"
    assert hmac_credentials["credWithUV"] != hmac_credentials["credWithoutUV"]

    pixel = cloud.account("a@gmail", provider=GOOGLE_PASSWORD_MANAGER).device("pixel")
    assert pixel.import_cxf(exported.to_json()).skipped == ()
    after = rp.login(Client(pixel), [registration], uv=REQUIRED, extensions=prf)
    assert after.user_verified and before.user_verified
    assert _prf(after) == _prf(before)


def test_cxf_prf_without_uv_maps_to_cred_without_uv(cloud: Cloud, rp: RelyingParty) -> None:
    source = cloud.account("a@gmail", provider=GOOGLE_PASSWORD_MANAGER).device(
        "linux", has_biometrics=False
    )
    registration = rp.register(Client(source), uv=DISCOURAGED, extensions={"prf": {}})
    prf = {"prf": {"eval": {"first": SALT}}}
    before = rp.login(Client(source), [registration], uv=DISCOURAGED, extensions=prf)
    verified = rp.login(Client(source), [registration], uv=REQUIRED, extensions=prf)
    assert not before.user_verified and verified.user_verified
    assert _prf(before) != _prf(verified)  # two secrets, as CTAP 2.1 §12.5 keeps them

    target = cloud.account("b@gmail", provider=GOOGLE_PASSWORD_MANAGER).device(
        "linux", has_biometrics=False
    )
    target.import_cxf(source.export_cxf().document)
    assert _prf(rp.login(Client(target), [registration], uv=DISCOURAGED, extensions=prf)) == _prf(
        before
    )
    assert _prf(rp.login(Client(target), [registration], uv=REQUIRED, extensions=prf)) == _prf(
        verified
    )


def _comparable(document: Mapping[str, Any]) -> list[Any]:
    """A CXF document minus what an export stamps anew (time, exporter)."""
    items = []
    for account in document["accounts"]:
        for item in account["items"]:
            kept = {k: v for k, v in item.items() if k not in ("creationAt", "modifiedAt")}
            items.append(kept)
    return sorted(items, key=lambda item: item["id"])


def test_cxf_export_import_export_round_trip(cloud: Cloud, rp: RelyingParty) -> None:
    phone = cloud.account("a@icloud", provider=ICLOUD_KEYCHAIN).device("phone")
    rp.register(Client(phone), b"alice", extensions={"prf": {}})
    rp.register(Client(phone), b"bob")  # no PRF: no fido2Extensions
    first = phone.export_cxf().document
    passkeys = [i["credentials"][0] for i in first["accounts"][0]["items"]]
    assert sorted("fido2Extensions" in p for p in passkeys) == [False, True]
    other = cloud.account("a@1p", provider=ONEPASSWORD).device("laptop")
    assert len(other.import_cxf(json.dumps(first)).imported) == 2
    second = other.export_cxf().document
    assert second["version"] == first["version"] == {"major": 1, "minor": 0}
    assert _comparable(second) == _comparable(first)


def test_cxf_import_refused_into_a_counting_provider(cloud: Cloud, rp: RelyingParty) -> None:
    phone = cloud.account("a", provider=ICLOUD_KEYCHAIN).device("phone")
    rp.register(Client(phone))
    counting = cloud.account(
        "b", provider=GOOGLE_PASSWORD_MANAGER.with_(counter=CounterMode.PER_CREDENTIAL)
    )
    target = counting.device("pixel")
    with pytest.raises(CxfError, match="zero"):
        target.import_cxf(phone.export_cxf().document)
    assert target.store.records() == []


# -- 4. BS at registration follows the device's state ------------------------------------------


def test_bs_at_registration_is_zero_while_sync_is_off(cloud: Cloud, rp: RelyingParty) -> None:
    phone = cloud.account("a", provider=ICLOUD_KEYCHAIN).device("phone")
    phone.sync_enabled = False
    registration = rp.register(Client(phone))
    assert not registration.backed_up
    assert registration.credential.credential_id in rp.public_keys
    login = rp.login(Client(phone))
    assert not login.backed_up, "registration and assertion agree"
    phone.sync_enabled = True
    assert rp.login(Client(phone)).backed_up


def test_bs_at_registration_under_the_synced_rule(cloud: Cloud, rp: RelyingParty) -> None:
    provider = ONEPASSWORD.with_(backup_state=BackupState.SYNCED)
    phone = cloud.account("a", provider=provider).device("phone")
    online = rp.register(Client(phone), b"online")
    assert online.backed_up, "uploaded during the ceremony"
    assert rp.login(Client(phone), [online]).backed_up
    phone.online = False
    offline = rp.register(Client(phone), b"offline")
    assert not offline.backed_up
    assert not rp.login(Client(phone), [offline]).backed_up
    phone.online = True
    assert rp.login(Client(phone), [offline]).backed_up


# -- 5. Bitwarden's non-discoverable passkeys sync ---------------------------------------------


def test_bitwarden_non_discoverable_passkey_syncs_and_signs_in_with_an_allow_list(
    cloud: Cloud, rp: RelyingParty
) -> None:
    account = cloud.account("a", provider=BITWARDEN)
    laptop, desktop = account.device("laptop"), account.device("desktop")
    registration = rp.register(Client(laptop), rk=ResidentKeyRequirement.DISCOURAGED)
    record = laptop.store.record(registration.credential.credential_id)
    assert record is not None and not record.discoverable, "a stored vault item"
    cloud.advance(seconds=BITWARDEN.propagation_delay)
    assert rp.login(Client(desktop), [registration]).credential_id == (
        registration.credential.credential_id
    )
    assert rp.cannot_login(Client(desktop)), "not offered in discovery [S8]"


# -- 6. Signal API, per-pair delays, clock skew, AAGUIDs ------------------------------------------


@pytest.mark.parametrize("effect", [SignalEffect.HIDE, SignalEffect.DELETE])
def test_signal_all_accepted_credentials_removes_only_the_unlisted(
    cloud: Cloud, rp: RelyingParty, effect: SignalEffect
) -> None:
    account = cloud.account("a", provider=ONEPASSWORD.with_(signal_effect=effect))
    phone, laptop = account.device("phone"), account.device("laptop")
    kept = rp.register(Client(phone))
    dropped = rp.register(Client(phone))  # 1Password keeps both for one user handle
    bob = rp.register(Client(phone), b"bob")
    account.sync()
    kept_id, dropped_id = kept.credential.credential_id, dropped.credential.credential_id
    outcomes = phone.signal_all_accepted_credentials(RP_ID, b"alice", [kept_id])
    expected = SignalOutcome.HIDDEN if effect is SignalEffect.HIDE else SignalOutcome.DELETED
    assert outcomes == {dropped_id: expected}
    cloud.advance(seconds=ONEPASSWORD.propagation_delay)
    for device in (phone, laptop):
        ids = {c.credential_id for c in device.passkeys()}
        assert ids == {kept_id, bob.credential.credential_id}
        assert rp.cannot_login(Client(device), [dropped])
        assert rp.login(Client(device), [kept]).credential_id == kept_id
    if effect is SignalEffect.HIDE:
        assert laptop.store.record(dropped_id) is not None  # hidden, not gone
        restored = phone.signal_all_accepted_credentials(RP_ID, b"alice", [kept_id, dropped_id])
        assert restored == {dropped_id: SignalOutcome.RESTORED}
        cloud.advance(seconds=ONEPASSWORD.propagation_delay)
        assert rp.login(Client(laptop), [dropped]).credential_id == dropped_id
    else:
        assert laptop.store.record(dropped_id) is None


def test_per_device_pair_delays(cloud: Cloud, rp: RelyingParty) -> None:
    account = cloud.account("a", provider=ICLOUD_KEYCHAIN)
    phone, laptop, tablet = (account.device(n) for n in ("phone", "laptop", "tablet"))
    account.delays[("phone", "tablet")] = 30.0
    registration = rp.register(Client(phone))
    cloud.advance(seconds=ICLOUD_KEYCHAIN.propagation_delay)
    assert rp.login(Client(laptop), [registration]).credential_id
    assert rp.cannot_login(Client(tablet), [registration]), "its path is slower"
    cloud.advance(seconds=30.0 - ICLOUD_KEYCHAIN.propagation_delay - 0.5)
    assert rp.cannot_login(Client(tablet), [registration])
    cloud.advance(seconds=0.5)
    assert rp.login(Client(tablet), [registration]).credential_id
    # The other direction keeps the provider's delay.
    back = rp.register(Client(tablet), b"bob")
    cloud.advance(seconds=ICLOUD_KEYCHAIN.propagation_delay)
    assert rp.login(Client(phone), [back]).credential_id


def test_clock_skew_picks_the_wrong_winner_of_concurrent_creations(
    cloud: Cloud, rp: RelyingParty
) -> None:
    """Reference §6.5: GPM breaks ties of concurrent creations by creation time, so a device
    whose clock runs ahead wins although its passkey is the older one."""
    account = cloud.account("a", provider=GOOGLE_PASSWORD_MANAGER)
    phone = account.device("phone")
    laptop = account.device("laptop", clock_skew=3600.0)
    phone.online = laptop.online = False
    older = rp.register(Client(laptop))  # first in real time, an hour ahead on its clock
    cloud.advance(seconds=60)
    newer = rp.register(Client(phone))
    phone.online = laptop.online = True
    account.sync()
    for device in (phone, laptop):
        assert rp.login(Client(device)).credential_id == older.credential.credential_id
        assert rp.cannot_login(Client(device), [newer]), "the RP's orphaned public key"


# The literal values of reference §0 / §1 ([S1] aaguid.json, [S3] kGpmAaguid, [S8]).
REFERENCE_AAGUIDS = {
    "icloud-keychain": "fbfc3007-154e-4ecc-8c0b-6e020557d7bd",
    "google-password-manager": "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
    "1password": "bada5566-a7aa-401f-bd96-45619a55120d",
    "bitwarden": "d548826e-79b4-db40-a3d8-11116f7e8349",
}


@pytest.mark.parametrize("name", list(REFERENCE_AAGUIDS))
def test_aaguids_are_the_reference_values(cloud: Cloud, rp: RelyingParty, name: str) -> None:
    provider = PROVIDERS[name]
    assert str(provider.aaguid) == REFERENCE_AAGUIDS[name]
    device = cloud.account("a", provider=provider).device("d")
    assert str(rp.register(Client(device)).aaguid) == REFERENCE_AAGUIDS[name]
