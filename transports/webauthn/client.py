"""``WebAuthnClient``: the browser's part of WebAuthn (L3 §5.1.3 createCredential, §5.1.4
getAssertion) over fidoemu authenticators or any python-fido2 ``CtapDevice``.

Theory of operation: ``create(options)``/``get(options)`` take the W3C JSON options, check them
in the spec's order (types, origin and RP ID, algorithms), build the client data, pick an
authenticator (filtering by attachment and capability, asking the scripted user when several
fit), translate the request to CTAP2 (rk/uv options, PIN when needed, excludeList/allowList,
extensions), run it, and translate the answer into what ``PublicKeyCredential.toJSON()``
returns. Failures raise the browser's DOMException names (``errors.py``).

Time is virtual: a ``Ceremony`` counts the seconds the scripted user waits; when they pass the
ceremony's timeout the client cancels the authenticator and raises ``NotAllowedError``, as a
browser does when its timer fires. Nothing sleeps.

Responses are passed to the relying party as the authenticator produced them (like Chromium,
the client verifies no signatures), so injected faults (``authenticator.faults``) reach the
relying party under test. The in-process path exchanges CTAP2 bytes with
``Authenticator.start()/resume()`` directly: no CTAPHID framing, threads or dataclass
conversions, which is what makes a ceremony cheap.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

import cbor2
from fido2.ctap import STATUS, CtapDevice
from fido2.ctap import CtapError as Fido2CtapError
from fido2.hid import CAPABILITY, CTAPHID
from fido2.rpid import verify_rp_id

from authenticator import Authenticator
from authenticator.commands import (
    Command,
    GetAssertionKey,
    GetAssertionResponseKey,
    GetInfoKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from authenticator.presence import Done, NeedPresence, Presence
from authenticator.status import CtapStatus
from transports.inprocess import Decision, InProcessDevice
from transports.webauthn.codec import (
    PUBLIC_KEY,
    b64url,
    b64url_decode,
    client_data_json,
    descriptors,
    load_options,
    member,
    optional_member,
    spki_from_cose,
)
from transports.webauthn.ctap_extensions import (
    PinUvToken,
    SaltRequest,
    SaltSession,
    authentication_salts,
    check_authentication_inputs,
    check_registration_inputs,
    read_large_blob,
    registration_salts,
    write_large_blob,
)
from transports.webauthn.errors import (
    AbortError,
    NotAllowedError,
    NotSupportedError,
    OptionsTypeError,
    SecurityError,
    WebAuthnError,
    error_for_status,
)
from transports.webauthn.trace import RecordingDevice, Trace
from transports.webauthn.user import Gesture, ScriptedUser

if TYPE_CHECKING:
    from fido2.ctap2.pin import ClientPin

# WebAuthn L3 §15.1 "Recommended Range for Ceremony Timeouts", in seconds.
TIMEOUT_RANGE: Final = (300.0, 600.0)
TIMEOUT_DEFAULT: Final = 300.0
TIMEOUT_RANGE_UV_DISCOURAGED: Final = (30.0, 180.0)
TIMEOUT_DEFAULT_UV_DISCOURAGED: Final = 120.0
# §5.1.3 step 10: an empty pubKeyCredParams means ES256 and RS256.
DEFAULT_ALGORITHMS: Final = (-7, -257)
MAX_USER_ID_LENGTH: Final = 64  # §5.4.3
_AT: Final = 0x40
_ED: Final = 0x80
_ZERO_AAGUID: Final = bytes(16)
_STATUS_BY_BYTE: Final = {int(s): s for s in CtapStatus}


@dataclass(slots=True)
class Info:
    """What a client reads from authenticatorGetInfo (CTAP 2.1 §6.4)."""

    versions: tuple[str, ...]
    aaguid: bytes
    options: dict[str, bool]
    extensions: frozenset[str]
    transports: tuple[str, ...]
    max_credential_count_in_list: int
    pin_uv_protocols: tuple[int, ...]
    remaining_discoverable_credentials: int | None = None  # CTAP 2.1 getInfo 0x14

    @property
    def platform(self) -> bool:
        return self.options.get("plat") is True

    @property
    def attachment(self) -> str:
        return "platform" if self.platform else "cross-platform"

    @classmethod
    def parse(cls, response: bytes) -> Info:
        if not response or response[0] != CtapStatus.OK:
            raise NotAllowedError("the authenticator did not answer getInfo")
        body: dict[int, Any] = cbor2.loads(response[1:])
        return cls(
            versions=tuple(body.get(GetInfoKey.VERSIONS, ())),
            aaguid=body.get(GetInfoKey.AAGUID, _ZERO_AAGUID),
            options=dict(body.get(GetInfoKey.OPTIONS, {})),
            extensions=frozenset(body.get(GetInfoKey.EXTENSIONS, ())),
            transports=tuple(sorted(body.get(GetInfoKey.TRANSPORTS, ("usb",)))),
            max_credential_count_in_list=body.get(GetInfoKey.MAX_CREDENTIAL_COUNT_IN_LIST, 1),
            pin_uv_protocols=tuple(body.get(GetInfoKey.PIN_UV_AUTH_PROTOCOLS, ())),
            remaining_discoverable_credentials=body.get(
                GetInfoKey.REMAINING_DISCOVERABLE_CREDENTIALS
            ),
        )


@dataclass
class Ceremony:
    """One create()/get(): its timer (virtual seconds), user and trace."""

    kind: str  # "webauthn.create" or "webauthn.get"
    rp_id: str
    timeout: float
    user: ScriptedUser
    trace: Trace | None
    elapsed: float = 0.0
    # largeBlob.write asked for: a PIN token then also carries lbw (CTAP 2.1 §6.10.2).
    large_blob_write: bool = False
    pin_uv_token: PinUvToken | None = field(default=None, repr=False)

    def elapse(self, seconds: float, port: Port) -> None:
        """The user took ``seconds``; past the timeout the client cancels (§5.1.3 step 22)."""
        if seconds <= 0:
            return
        self.elapsed += seconds
        if self.elapsed >= self.timeout:
            port.cancel()
            if self.trace is not None:
                self.trace.note(f"timeout after {self.timeout:g} s: cancelled")
            raise NotAllowedError(f"The operation timed out after {self.timeout:g} seconds.")

    def name(self) -> str:
        return "registration" if self.kind == "webauthn.create" else "authentication"


class Port(Protocol):
    """An attached authenticator as the client drives it: CTAP2 messages in and out."""

    name: str

    def info(self, trace: Trace | None = None) -> Info:
        """getInfo, cached; a fetch is recorded in ``trace``."""
        ...

    def exchange(self, message: bytes, ceremony: Ceremony) -> bytes: ...

    def cancel(self) -> None: ...

    def makes_discoverable_only(self) -> bool:
        """Whether every credential it makes is discoverable, whatever the rk option."""
        ...

    def ctap_device(self, trace: Trace | None = None) -> CtapDevice:
        """A python-fido2 view of the same authenticator (for ClientPin, LargeBlobs, key
        agreement) whose every CTAP2 exchange is recorded in ``trace``."""
        ...


class CorePort:
    """An in-process ``Authenticator``, driven through start()/resume()."""

    def __init__(self, authenticator: Authenticator, name: str) -> None:
        self.authenticator = authenticator
        self.name = name
        self._info: Info | None = None

    def __repr__(self) -> str:
        return f"CorePort({self.name!r})"

    def info(self, trace: Trace | None = None) -> Info:
        if self._info is None:
            message = bytes([Command.GET_INFO])
            response = self.authenticator.call(message)
            if trace is not None:
                trace.record(self.name, message, response)
            self._info = Info.parse(response)
        return self._info

    def forget_info(self) -> None:
        self._info = None

    def exchange(self, message: bytes, ceremony: Ceremony) -> bytes:
        authenticator = self.authenticator
        step = authenticator.start(message)
        while type(step) is not Done:
            assert isinstance(step, NeedPresence)  # noqa: S101 - Step is Done | NeedPresence
            waited, touch = ceremony.user.presence(step)
            ceremony.elapse(waited, self)
            if touch.gesture is Gesture.ABORT:
                authenticator.cancel()
                raise AbortError("The operation was aborted.")
            if touch.gesture is not Gesture.APPROVE and ceremony.trace is not None:
                ceremony.trace.note(f"user: {touch.gesture.value} ({step.reason})")
            step = authenticator.resume(touch.presence)
        response = step.response
        if ceremony.trace is not None:
            ceremony.trace.record(self.name, message, response)
        return response

    def cancel(self) -> None:
        self.authenticator.cancel()

    def makes_discoverable_only(self) -> bool:
        return self.authenticator.config.discoverable_only

    def ctap_device(self, trace: Trace | None = None) -> CtapDevice:
        device = InProcessDevice(self.authenticator)
        return device if trace is None else RecordingDevice(device, self.name, trace)


class DevicePort:
    """Any python-fido2 ``CtapDevice`` (InProcessDevice, CtapHidDevice on a uhid key, ...).

    A foreign device decides presence itself; the scripted user can still cancel or abort
    while it waits (on its first UPNEEDED keepalive), which sends CTAPHID_CANCEL. An
    ``InProcessDevice`` takes the scripted user's touches, with their timing, whenever the
    script queues one (``ScriptedUser.scripts_presence``): over its HID path a wait is
    virtual time filled with keepalives, and a cancel, an abort or the ceremony's timer is
    a CTAPHID_CANCEL from the host at that moment.
    """

    def __init__(self, device: CtapDevice, name: str) -> None:
        self.device = device
        self.name = name
        self._info: Info | None = None
        self._event: threading.Event | None = None

    def __repr__(self) -> str:
        return f"DevicePort({self.name!r})"

    def info(self, trace: Trace | None = None) -> Info:
        if self._info is None:
            message = bytes([Command.GET_INFO])
            response = self._call(message, None, None)
            if trace is not None:
                trace.record(self.name, message, response)
            self._info = Info.parse(response)
        return self._info

    def forget_info(self) -> None:
        self._info = None

    def exchange(self, message: bytes, ceremony: Ceremony) -> bytes:
        event = threading.Event()
        self._event = event
        gestures: list[Gesture] = []

        def on_keepalive(status: int) -> None:
            if status != STATUS.UPNEEDED or gestures or scripted:
                # A scripted InProcessDevice asks ``decide`` for the gesture; its direct path
                # reports UPNEEDED first, which must not use up (or cancel on) that gesture.
                return
            waited, touch = ceremony.user.presence(NeedPresence(ceremony.rp_id))
            gestures.append(touch.gesture)
            ceremony.elapsed += waited
            if touch.gesture is not Gesture.APPROVE or ceremony.elapsed >= ceremony.timeout:
                event.set()

        def decide(need: NeedPresence) -> Decision:
            waited, touch = ceremony.user.presence(need)
            gestures.append(touch.gesture)
            remaining = ceremony.timeout - ceremony.elapsed
            if waited >= remaining:  # the client's timer fires first: it cancels
                ceremony.elapsed = ceremony.timeout
                return Decision(Presence.CANCELLED, remaining)
            ceremony.elapsed += waited
            if touch.gesture is not Gesture.APPROVE and ceremony.trace is not None:
                ceremony.trace.note(f"user: {touch.gesture.value} ({need.reason})")
            return Decision(touch.presence, waited)

        device = self.device
        scripted = isinstance(device, InProcessDevice) and ceremony.user.scripts_presence
        own = device.presence if scripted and isinstance(device, InProcessDevice) else None
        try:
            if scripted and isinstance(device, InProcessDevice):
                device.presence = decide
            response = self._call(message, event, on_keepalive)
        finally:
            self._event = None
            if own is not None and isinstance(device, InProcessDevice):
                device.presence = own
        if ceremony.trace is not None:
            ceremony.trace.record(self.name, message, response)
        if gestures and gestures[0] is Gesture.ABORT:
            raise AbortError("The operation was aborted.")
        if ceremony.elapsed >= ceremony.timeout:
            raise NotAllowedError(f"The operation timed out after {ceremony.timeout:g} seconds.")
        return response

    def _call(
        self,
        message: bytes,
        event: threading.Event | None,
        on_keepalive: Callable[[int], None] | None,
    ) -> bytes:
        try:
            return bytes(self.device.call(CTAPHID.CBOR, message, event, on_keepalive))
        except Fido2CtapError as error:  # transports raise some statuses instead of returning
            return bytes([int(error.code)])

    def cancel(self) -> None:
        if self._event is not None:
            self._event.set()

    def makes_discoverable_only(self) -> bool:
        """Known for a fidoemu ``InProcessDevice``; a foreign device (a uhid key through
        ``CtapHidDevice``, a real key) does not say, so its rk option is taken at its word."""
        device = self.device
        return isinstance(device, InProcessDevice) and device.authenticator.config.discoverable_only

    def ctap_device(self, trace: Trace | None = None) -> CtapDevice:
        device = self.device
        return device if trace is None else RecordingDevice(device, self.name, trace)


class _CeremonyDevice(CtapDevice):
    """A python-fido2 ``CtapDevice`` whose CTAP2 messages go through ``port.exchange``, so a
    presence or built-in UV request while python-fido2's ``ClientPin`` waits (the gesture of
    getPinUvAuthTokenUsingUvWithPermissions) is answered by the ceremony's scripted user,
    counts against its timer and is traced, like the ceremony's own commands."""

    def __init__(self, port: CorePort | DevicePort, ceremony: Ceremony) -> None:
        self.port = port
        self.ceremony = ceremony

    @property
    def capabilities(self) -> int:
        return int(CAPABILITY.CBOR)

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd != CTAPHID.CBOR:
            raise Fido2CtapError(Fido2CtapError.ERR.INVALID_COMMAND)
        return self.port.exchange(bytes(data), self.ceremony)

    @classmethod
    def list_devices(cls) -> Iterator[CtapDevice]:
        return iter(())


Attachable = Authenticator | CtapDevice


def _port(authenticator: Attachable, name: str) -> CorePort | DevicePort:
    if isinstance(authenticator, Authenticator):
        return CorePort(authenticator, name)
    if isinstance(authenticator, CtapDevice):
        return DevicePort(authenticator, name)
    raise TypeError(
        f"cannot attach {type(authenticator).__name__}: not an Authenticator or CtapDevice"
    )


@dataclass
class _Salts:
    """hmac-secret(-mc) salts to send, and the key agreement used (to decrypt the output)."""

    name: str  # "hmac-secret" or "hmac-secret-mc"
    wanted: SaltRequest
    session: SaltSession | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    attachment: str | None
    resident_key: str  # "required" | "preferred" | "discouraged"
    user_verification: str  # "required" | "preferred" | "discouraged"


@dataclass
class WebAuthnClient:
    """A browser for WebAuthn, with scriptable people and authenticators.

    ``authenticator`` is one ``Authenticator`` or ``CtapDevice``, or a list of them (all
    attached, as several keys plugged in at once). ``top_origin`` makes the calls come from a
    cross-origin iframe inside that top-level origin.
    """

    origin: str
    authenticator: Attachable | Sequence[Attachable] = ()
    top_origin: str | None = None
    user: ScriptedUser = field(default_factory=ScriptedUser)
    trace: Trace | None = None
    verify_rp_id: Callable[[str, str], bool] = verify_rp_id
    # RP IDs the browser's policy permits enterprise attestation for (Chromium's
    # SecurityKeyPermitAttestation): attestation "enterprise" then asks for ep=2.
    enterprise_rp_ids: frozenset[str] = frozenset()
    ports: list[CorePort | DevicePort] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        attached = self.authenticator
        if isinstance(attached, Authenticator | CtapDevice):
            attached = [attached]
        for each in attached:
            self.attach(each)
        self._effective_domain = _effective_domain(self.origin)
        self._effective_domain_of = self.origin
        self._valid_rp_ids: set[tuple[str, str]] = set()

    def attach(self, authenticator: Attachable, name: str | None = None) -> None:
        """Plug in another authenticator; with several, the user picks (choose_authenticator)."""
        self.ports.append(_port(authenticator, name or f"authenticator {len(self.ports)}"))

    def detach(self, authenticator: Attachable) -> None:
        self.ports = [
            p
            for p in self.ports
            if getattr(p, "authenticator", None) is not authenticator
            and getattr(p, "device", None) is not authenticator
        ]

    def refresh(self) -> None:
        """Forget cached getInfo answers (after changing a PIN or config behind our back)."""
        for port in self.ports:
            port.forget_info()

    # -- navigator.credentials.create --------------------------------------------------------

    def create(self, options: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """navigator.credentials.create({publicKey}) then ``toJSON()`` (WebAuthn L3 §5.1.3)."""
        opts = load_options(options)
        rp = member(opts, "rp", Mapping, "rp")
        rp_name = member(rp, "name", str, "rp.name")  # L3 §5.4.1: a required DOMString
        user = member(opts, "user", Mapping, "user")
        challenge = b64url_decode(opts.get("challenge"), "challenge")
        user_id = b64url_decode(user.get("id"), "user.id")
        user_name = member(user, "name", str, "user.name")
        display_name = member(user, "displayName", str, "user.displayName")
        params = member(opts, "pubKeyCredParams", list, "pubKeyCredParams")
        exclude = descriptors(opts.get("excludeCredentials"), "excludeCredentials")
        selection = _selection(opts.get("authenticatorSelection"))
        attestation = optional_member(opts, "attestation", str, "attestation") or "none"
        extensions = optional_member(opts, "extensions", Mapping, "extensions") or {}
        hints = optional_member(opts, "hints", list, "hints") or []
        formats = optional_member(opts, "attestationFormats", list, "attestationFormats") or []
        timeout = _timeout(opts.get("timeout"), selection.user_verification)
        if extensions:
            check_registration_inputs(extensions)
        # Step 5: user.id is 1 to 64 bytes.
        if not 1 <= len(user_id) <= MAX_USER_ID_LENGTH:
            raise OptionsTypeError("user.id must be between 1 and 64 bytes")
        rp_id = self._rp_id(optional_member(rp, "id", str, "rp.id"))  # steps 6-8
        algorithms = _algorithms(params)  # step 10
        client_data = client_data_json("webauthn.create", challenge, self.origin, self.top_origin)
        client_data_hash = hashlib.sha256(client_data).digest()
        ceremony = Ceremony("webauthn.create", rp_id, timeout, self.user, self.trace)

        port, info = self._pick(ceremony, selection, hints, extensions)
        if selection.resident_key == "preferred" and info.options.get("rk") is True:
            # A fresh count of free slots (the cached one ages with every passkey made).
            port.forget_info()
            info = port.info(self.trace)
        rk = _resident_key(selection, info)
        if rk and selection.user_verification == "discouraged" and _uv_method(info, "preferred"):
            # CTAP 2.1 §6.1.2 steps 6-8: makeCredUvNotRqd spares UV only for non-discoverable
            # credentials; a protected authenticator verifies the user for a discoverable one,
            # so the client does (as Chromium asks for the PIN or built-in UV).
            selection = Selection(selection.attachment, selection.resident_key, "preferred")
        request: dict[int, Any] = {
            MakeCredentialKey.CLIENT_DATA_HASH: client_data_hash,
            MakeCredentialKey.RP: {"id": rp_id, "name": rp_name},
            MakeCredentialKey.USER: _entity(
                {"id": user_id, "name": user_name, "displayName": display_name}
            ),
            MakeCredentialKey.PUB_KEY_CRED_PARAMS: [
                {"alg": alg, "type": PUBLIC_KEY} for alg in algorithms
            ],
        }
        ctap_options: dict[str, bool] = {}
        if rk:
            ctap_options["rk"] = True
        if exclude:
            excluded = self._check_exclude(port, info, ceremony, rp_id, exclude)
            if excluded is not None:
                request[MakeCredentialKey.EXCLUDE_LIST] = excluded
        ctap_extensions = _registration_extensions(extensions, info)
        if ctap_extensions:
            request[MakeCredentialKey.EXTENSIONS] = _canonical_keys(ctap_extensions)
        salts = None
        if extensions and "hmac-secret-mc" in info.extensions:
            wanted = registration_salts(extensions)
            salts = None if wanted is None else _Salts("hmac-secret-mc", wanted)
        if attestation == "enterprise" and info.options.get("ep") is True:
            # L3 §5.1.3 (enterpriseAttestationPossible), CTAP 2.1 §7.1: an RP the browser's
            # policy lists gets platform-managed enterprise attestation (2); any other RP
            # only vendor-facilitated (1), which the authenticator grants to RPs it lists.
            request[MakeCredentialKey.ENTERPRISE_ATTESTATION] = (
                2 if rp_id in self.enterprise_rp_ids else 1
            )
        wanted_formats = [f for f in formats if isinstance(f, str)]
        if wanted_formats and attestation != "none":
            # L3 §5.4 attestationFormats, as CTAP 2.2's attestationFormatsPreference.
            request[MakeCredentialKey.ATTESTATION_FORMATS_PREFERENCE] = wanted_formats
        body = self._run(
            port, info, ceremony, Command.MAKE_CREDENTIAL, request, ctap_options, selection, salts
        )
        # WebAuthn L3 §10.1.3 credProps: rk says what was made, not what was asked for. A
        # passkey-only authenticator (a platform one, a passkey provider) makes a
        # discoverable credential even without the rk option, and browsers report it so.
        made_rk = rk or port.makes_discoverable_only()
        result = _registration_json(body, client_data, info, attestation, extensions, made_rk)
        if salts is not None and salts.session is not None:
            output = _auth_data_extensions(body.get(MakeCredentialResponseKey.AUTH_DATA))
            encrypted = output.get("hmac-secret-mc")
            if isinstance(encrypted, bytes):
                prf = salts.wanted.to_json(salts.session.outputs(encrypted))["prf"]
                result["clientExtensionResults"]["prf"].update(prf)
        return result

    # -- navigator.credentials.get ----------------------------------------------------------

    def get(self, options: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """navigator.credentials.get({publicKey}) then ``toJSON()`` (WebAuthn L3 §5.1.4)."""
        opts = load_options(options)
        challenge = b64url_decode(opts.get("challenge"), "challenge")
        allow = descriptors(opts.get("allowCredentials"), "allowCredentials")
        uv = optional_member(opts, "userVerification", str, "userVerification") or "preferred"
        extensions = optional_member(opts, "extensions", Mapping, "extensions") or {}
        hints = optional_member(opts, "hints", list, "hints") or []
        timeout = _timeout(opts.get("timeout"), uv)
        if extensions:
            check_authentication_inputs(extensions, [d["id"] for d in allow])
        rp_id = self._rp_id(optional_member(opts, "rpId", str, "rpId"))
        client_data = client_data_json("webauthn.get", challenge, self.origin, self.top_origin)
        client_data_hash = hashlib.sha256(client_data).digest()
        ceremony = Ceremony("webauthn.get", rp_id, timeout, self.user, self.trace)
        selection = Selection(None, "discouraged", uv)

        if len(self.ports) == 1:
            port = self.ports[0]
            info = _info_for(port, uv, self.trace)
            if uv == "required" and _uv_method(info, uv) is None:
                raise NotAllowedError("The authenticator cannot verify the user.")
        else:
            port, info = self._pick(ceremony, selection, hints, {}, rp_id=rp_id, allow=allow)
        request: dict[int, Any] = {
            GetAssertionKey.RP_ID: rp_id,
            GetAssertionKey.CLIENT_DATA_HASH: client_data_hash,
        }
        if allow:
            request[GetAssertionKey.ALLOW_LIST] = self._fit_allow_list(
                port, info, ceremony, rp_id, allow
            )
        ctap_extensions = _authentication_extensions(extensions, info)
        large_blob = extensions.get("largeBlob") if extensions else None
        if isinstance(large_blob, Mapping) and large_blob.get("write") is not None:
            if len(allow) != 1:
                # WebAuthn §10.1.5: a write names exactly one credential.
                raise NotSupportedError("largeBlob.write needs exactly one allowCredentials entry")
            if "largeBlobKey" in info.extensions:
                ctap_extensions["largeBlobKey"] = True
                ceremony.large_blob_write = True
                if uv == "discouraged" and _lbw_token_source(info) is not None:
                    # A key protected by a PIN or built-in UV writes only with an lbw token
                    # (CTAP 2.1 §6.10.2): the user is verified even though the RP discouraged it.
                    selection = Selection(None, "discouraged", "preferred")
        if ctap_extensions:
            request[GetAssertionKey.EXTENSIONS] = _canonical_keys(ctap_extensions)
        salts = None
        if extensions and "hmac-secret" in info.extensions:
            wanted = authentication_salts(extensions, [d["id"] for d in allow])
            salts = None if wanted is None else _Salts("hmac-secret", wanted)
        body = self._run(port, info, ceremony, Command.GET_ASSERTION, request, {}, selection, salts)

        count = body.get(GetAssertionResponseKey.NUMBER_OF_CREDENTIALS, 1)
        if not allow and count > 1:
            body = self._choose_account(port, ceremony, body, count)
        credential = body.get(GetAssertionResponseKey.CREDENTIAL)
        if credential is None and len(allow) == 1:
            credential = allow[0]  # CTAP 2.1 §6.2.2: may be omitted for a single allowed ID
        if credential is None:
            raise NotAllowedError("The authenticator returned no credential.")
        result = _authentication_json(body, credential["id"], client_data, info, extensions)
        if extensions:
            self._authentication_outputs(port, ceremony, body, extensions, salts, result)
        return result

    def _authentication_outputs(
        self,
        port: CorePort | DevicePort,
        ceremony: Ceremony,
        body: dict[int, Any],
        extensions: Mapping[str, Any],
        salts: _Salts | None,
        result: dict[str, Any],
    ) -> None:
        """Extension outputs that need the platform: decrypted hmac-secret, large blobs."""
        results: dict[str, Any] = result["clientExtensionResults"]
        if isinstance(extensions.get("prf"), Mapping):
            results["prf"] = {}
        if salts is not None and salts.session is not None:
            output = _auth_data_extensions(body.get(GetAssertionResponseKey.AUTH_DATA))
            encrypted = output.get("hmac-secret")
            if isinstance(encrypted, bytes):
                results.update(salts.wanted.to_json(salts.session.outputs(encrypted)))
        large_blob = extensions.get("largeBlob")
        if isinstance(large_blob, Mapping):
            key = body.get(GetAssertionResponseKey.LARGE_BLOB_KEY)
            if large_blob.get("read") is True:
                blob = (
                    read_large_blob(port.ctap_device(ceremony.trace), key)
                    if isinstance(key, bytes)
                    else None
                )
                results["largeBlob"] = {} if blob is None else {"blob": b64url(blob)}
            elif large_blob.get("write") is not None:
                data = b64url_decode(large_blob["write"], "largeBlob.write")
                written = isinstance(key, bytes) and write_large_blob(
                    port.ctap_device(ceremony.trace), key, data, ceremony.pin_uv_token
                )
                results["largeBlob"] = {"written": written}

    # -- the steps ---------------------------------------------------------------------------

    def _rp_id(self, rp_id: str | None) -> str:
        """WebAuthn §5.1.3 steps 6-8 / §5.1.4.1 steps 4-6."""
        if self._effective_domain_of != self.origin:  # the origin may be reassigned
            self._effective_domain = _effective_domain(self.origin)
            self._effective_domain_of = self.origin
        domain = self._effective_domain
        if domain is None:
            raise SecurityError(f"{self.origin} is not a valid domain for WebAuthn")
        if rp_id is None:
            rp_id = domain
        if (rp_id, self.origin) in self._valid_rp_ids:
            return rp_id
        if not self.verify_rp_id(rp_id, self.origin):
            raise SecurityError(
                f"The RP ID {rp_id!r} is not a registrable domain suffix of {self.origin}."
            )
        if len(self._valid_rp_ids) < 64:  # a pure function of (rp_id, origin): remember it
            self._valid_rp_ids.add((rp_id, self.origin))
        return rp_id

    def _pick(
        self,
        ceremony: Ceremony,
        selection: Selection,
        hints: list[Any],
        extensions: Mapping[str, Any],
        *,
        rp_id: str | None = None,
        allow: list[dict[str, Any]] | None = None,
    ) -> tuple[CorePort | DevicePort, Info]:
        """The authenticator the user ends up using (§5.1.3 step 20's "for each authenticator")."""
        if not self.ports:
            raise NotAllowedError("No authenticator is attached.")
        eligible: list[tuple[CorePort | DevicePort, Info]] = []
        attachment = selection.attachment
        if attachment is not None and _hinted_attachment(hints) not in (None, attachment):
            attachment = None  # L3 §5.8.7: hints take precedence over authenticatorAttachment
        for port in self.ports:
            info = _info_for(port, selection.user_verification, self.trace)
            if attachment is not None and info.attachment != attachment:
                continue
            if selection.resident_key == "required" and info.options.get("rk") is not True:
                continue
            if selection.user_verification == "required" and _uv_method(info, "required") is None:
                continue
            if _requires_large_blob(extensions) and "largeBlobKey" not in info.extensions:
                continue
            eligible.append((port, info))
        if not eligible:
            raise NotAllowedError(
                "No attached authenticator meets the request (attachment, resident key, "
                "user verification or extensions)."
            )
        if len(eligible) == 1:
            return eligible[0]
        eligible.sort(key=lambda pair: _hint_rank(hints, pair[1]))
        if allow and rp_id is not None:
            # A browser sends the request to every key; the one the user touches answers. Keys
            # without the credential are put last, as the user would touch the right one.
            eligible.sort(key=lambda pair: not self._has_any(pair[0], pair[1], rp_id, allow))
        waited, index = ceremony.user.choose_authenticator([p.name for p, _ in eligible])
        ceremony.elapse(waited, eligible[0][0])
        return eligible[index]

    def _has_any(
        self, port: CorePort | DevicePort, info: Info, rp_id: str, allow: list[dict[str, Any]]
    ) -> bool:
        """A silent probe (getAssertion with up=false, CTAP 2.1 §6.2.2), as Chromium does."""
        probe = Ceremony("webauthn.get", rp_id, TIMEOUT_DEFAULT, ScriptedUser(), self.trace)
        size = max(1, info.max_credential_count_in_list)
        for start in range(0, len(allow), size):
            message = _message(
                Command.GET_ASSERTION,
                {
                    GetAssertionKey.RP_ID: rp_id,
                    GetAssertionKey.CLIENT_DATA_HASH: bytes(32),
                    GetAssertionKey.ALLOW_LIST: allow[start : start + size],
                    GetAssertionKey.OPTIONS: {"up": False},
                },
            )
            if port.exchange(message, probe)[:1] == b"\x00":
                return True
        return False

    def _fit_allow_list(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        rp_id: str,
        allow: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """An allowList longer than maxCredentialCountInList is probed in batches (silently,
        up=false) and the batch holding a credential is sent, as Chromium does."""
        size = max(1, info.max_credential_count_in_list)
        if len(allow) <= size:
            return allow
        for start in range(0, len(allow), size):
            batch = allow[start : start + size]
            if self._has_any(port, info, rp_id, batch):
                return batch
        return allow[:size]  # nothing matches: the authenticator answers NO_CREDENTIALS

    def _check_exclude(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        rp_id: str,
        exclude: list[dict[str, Any]],
    ) -> list[dict[str, Any]] | None:
        size = max(1, info.max_credential_count_in_list)
        if len(exclude) <= size:
            return exclude
        for start in range(0, len(exclude), size):
            batch = exclude[start : start + size]
            if self._has_any(port, info, rp_id, batch):
                return batch  # the authenticator will wait for a touch, then say EXCLUDED
        return None

    def _run(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        command: Command,
        request: dict[int, Any],
        ctap_options: dict[str, bool],
        selection: Selection,
        salts: _Salts | None = None,
    ) -> dict[int, Any]:
        """Send the command with the user-verification method that fits, then decode."""
        method = _uv_method(info, selection.user_verification)
        if method is not None and ceremony.large_blob_write:
            # The write after the assertion needs a token with lbw, which the "uv" option
            # never yields: get one from built-in UV when the key offers it, else the PIN.
            method = _lbw_token_source(info) or method
        if method == "uv":
            ctap_options["uv"] = True
        key = (
            MakeCredentialKey.OPTIONS
            if command == Command.MAKE_CREDENTIAL
            else GetAssertionKey.OPTIONS
        )
        if ctap_options:
            request[key] = ctap_options
        if method == "pin":
            return self._run_with_pin(port, info, ceremony, command, request, salts)
        if method == "uv-token":
            return self._run_with_uv_token(port, info, ceremony, command, request, salts)
        response = self._send(port, ceremony, command, request, info, salts)
        status = response[0] if response else CtapStatus.OTHER
        if (
            method == "uv"
            and status in _UV_FAILED_USE_PIN
            and info.options.get("clientPin") is True
        ):
            # Built-in UV failed: fall back to the PIN, as browsers offer. CTAP 2.1 §6.1.2
            # step 11.2.3 / §6.2.2 step 6.2.3 answer PUAT_REQUIRED; older keys UV_INVALID.
            del ctap_options["uv"]
            if ctap_options:
                request[key] = ctap_options
            else:
                request.pop(key, None)
            return self._run_with_pin(port, info, ceremony, command, request, salts)
        return _decode(response, ceremony)

    def _send(
        self,
        port: CorePort | DevicePort,
        ceremony: Ceremony,
        command: Command,
        request: dict[int, Any],
        info: Info,
        salts: _Salts | None,
    ) -> bytes:
        """The final exchange; hmac-secret salts are encrypted last, after any PIN token,
        under a fresh key agreement (CTAP 2.1 §12.5)."""
        if salts is None:
            return port.exchange(_message(command, request), ceremony)
        salts.session = SaltSession.open(port.ctap_device(ceremony.trace), info.pin_uv_protocols)
        key = (
            MakeCredentialKey.EXTENSIONS
            if command == Command.MAKE_CREDENTIAL
            else GetAssertionKey.EXTENSIONS
        )
        extensions = dict(request.get(key, {}))
        extensions[salts.name] = salts.session.salts(salts.wanted.first, salts.wanted.second)
        if salts.name == "hmac-secret-mc":
            extensions["hmac-secret"] = True
        request[key] = _canonical_keys(extensions)
        return port.exchange(_message(command, request), ceremony)

    def _run_with_pin(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        command: Command,
        request: dict[int, Any],
        salts: _Salts | None = None,
    ) -> dict[int, Any]:
        """clientPIN (CTAP 2.1 §6.5) through python-fido2's ``ClientPin``: ask the scripted
        user for the PIN, get a pinUvAuthToken for this RP, authenticate the request."""
        from fido2.ctap2 import Ctap2
        from fido2.ctap2.pin import ClientPin

        ctap2 = Ctap2(port.ctap_device(ceremony.trace))
        client_pin = ClientPin(ctap2)
        permission = _token_permission(command, ceremony, ClientPin.PERMISSION)
        while True:
            waited, pin = ceremony.user.pin(ceremony.rp_id)
            ceremony.elapse(waited, port)
            if pin is None:
                raise NotAllowedError("The user did not enter a PIN.")
            try:
                token = client_pin.get_pin_token(pin, permission, ceremony.rp_id)
            except Fido2CtapError as error:
                if ceremony.trace is not None:
                    ceremony.trace.note(f"PIN rejected: {error.code.name}")
                if error.code == Fido2CtapError.ERR.PIN_INVALID:
                    continue
                raise NotAllowedError(
                    f"PIN entry failed ({error.code.name}).",
                    status=_STATUS_BY_BYTE.get(int(error.code)),
                ) from None
            break
        return self._send_with_token(
            port, info, ceremony, command, request, salts, PinUvToken(client_pin.protocol, token)
        )

    def _run_with_uv_token(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        command: Command,
        request: dict[int, Any],
        salts: _Salts | None = None,
    ) -> dict[int, Any]:
        """getPinUvAuthTokenUsingUvWithPermissions (CTAP 2.1 §6.5.5.7.3) through python-fido2's
        ``ClientPin.get_uv_token``: the built-in UV gesture is the scripted user's answer to
        the authenticator's presence request, as for the "uv" option. When built-in UV fails
        (UV_INVALID) or is blocked (UV_BLOCKED) and a PIN is set, the PIN is asked for, as the
        "uv" path falls back; other failures end the ceremony."""
        from fido2.ctap2 import Ctap2
        from fido2.ctap2.pin import ClientPin

        client_pin = ClientPin(Ctap2(_CeremonyDevice(port, ceremony)))
        permission = _token_permission(command, ceremony, ClientPin.PERMISSION)
        try:
            token = client_pin.get_uv_token(permission, ceremony.rp_id)
        except Fido2CtapError as error:
            status = _STATUS_BY_BYTE.get(int(error.code), CtapStatus.OTHER)
            if ceremony.trace is not None:
                ceremony.trace.note(f"built-in UV gave no token: {status.name}")
            if status in _UV_TOKEN_FAILED_USE_PIN and info.options.get("clientPin") is True:
                return self._run_with_pin(port, info, ceremony, command, request, salts)
            raise error_for_status(status, ceremony.name()) from None
        return self._send_with_token(
            port, info, ceremony, command, request, salts, PinUvToken(client_pin.protocol, token)
        )

    def _send_with_token(
        self,
        port: CorePort | DevicePort,
        info: Info,
        ceremony: Ceremony,
        command: Command,
        request: dict[int, Any],
        salts: _Salts | None,
        token: PinUvToken,
    ) -> dict[int, Any]:
        """The request with pinUvAuthParam = authenticate(token, clientDataHash) (CTAP 2.1
        §6.1.2 / §6.2.2 step 1); the token is kept for a largeBlob write after it."""
        ceremony.pin_uv_token = token
        client_data_hash_key = (
            MakeCredentialKey.CLIENT_DATA_HASH
            if command == Command.MAKE_CREDENTIAL
            else GetAssertionKey.CLIENT_DATA_HASH
        )
        param_key, protocol_key = (
            (MakeCredentialKey.PIN_UV_AUTH_PARAM, MakeCredentialKey.PIN_UV_AUTH_PROTOCOL)
            if command == Command.MAKE_CREDENTIAL
            else (GetAssertionKey.PIN_UV_AUTH_PARAM, GetAssertionKey.PIN_UV_AUTH_PROTOCOL)
        )
        request[param_key] = token.protocol.authenticate(token.token, request[client_data_hash_key])
        request[protocol_key] = token.protocol.VERSION
        return _decode(self._send(port, ceremony, command, request, info, salts), ceremony)

    def _choose_account(
        self, port: CorePort | DevicePort, ceremony: Ceremony, first: dict[int, Any], count: int
    ) -> dict[int, Any]:
        """getNextAssertion for every account, then the user's pick (CTAP 2.1 §6.3)."""
        bodies = [first]
        message = bytes([Command.GET_NEXT_ASSERTION])
        for _ in range(count - 1):
            bodies.append(_decode(port.exchange(message, ceremony), ceremony))
        names = [_account_name(b.get(GetAssertionResponseKey.USER)) for b in bodies]
        waited, index = ceremony.user.choose_account(names)
        ceremony.elapse(waited, port)
        return bodies[index]


# -- helpers without state ---------------------------------------------------------------------


def _info_for(port: CorePort | DevicePort, user_verification: str, trace: Trace | None) -> Info:
    """getInfo (cached); when UV is required but seems impossible, read it again: a PIN
    may have been set since (by python-fido2's ClientPin, or another client)."""
    info = port.info(trace)
    if user_verification == "required" and _uv_method(info, "required") is None:
        port.forget_info()
        info = port.info(trace)
    return info


def _effective_domain(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    host = parts.hostname
    if not host or parts.scheme not in ("https", "http"):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None  # §5.1.3 step 7: an IP address is not a valid domain


def _selection(value: Any) -> Selection:
    if value is None:
        return Selection(None, "discouraged", "preferred")
    if not isinstance(value, Mapping):
        raise OptionsTypeError("authenticatorSelection must be an object")
    attachment = optional_member(value, "authenticatorAttachment", str, "authenticatorAttachment")
    if attachment not in (None, "platform", "cross-platform"):
        attachment = None  # unknown enum values are ignored (§5.4.4)
    resident_key = optional_member(value, "residentKey", str, "residentKey")
    if resident_key not in ("required", "preferred", "discouraged"):
        # §5.4.4: residentKey wins; requireResidentKey only when it is absent.
        legacy = optional_member(value, "requireResidentKey", bool, "requireResidentKey")
        resident_key = "required" if legacy else "discouraged"
    uv = optional_member(value, "userVerification", str, "userVerification")
    if uv not in ("required", "preferred", "discouraged"):
        uv = "preferred"
    return Selection(attachment, resident_key, uv)


def _timeout(value: Any, user_verification: str) -> float:
    """§5.1.3 step 4: clamp to the client's range (§15.1's recommendations)."""
    if user_verification == "discouraged":
        (low, high), default = TIMEOUT_RANGE_UV_DISCOURAGED, TIMEOUT_DEFAULT_UV_DISCOURAGED
    else:
        (low, high), default = TIMEOUT_RANGE, TIMEOUT_DEFAULT
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(value / 1000.0, low), high)
    return default


def _algorithms(params: list[Any]) -> list[int]:
    if not params:
        return list(DEFAULT_ALGORITHMS)
    algorithms = []
    for param in params:
        if not isinstance(param, Mapping):
            raise OptionsTypeError("pubKeyCredParams entries must be objects")
        kind = member(param, "type", str, "pubKeyCredParams[].type")
        alg = member(param, "alg", int, "pubKeyCredParams[].alg")
        if kind == PUBLIC_KEY:
            algorithms.append(alg)
    if not algorithms:
        raise NotSupportedError("No supported credential type in pubKeyCredParams.")
    return algorithms


def _entity(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if v is not None}


def _resident_key(selection: Selection, info: Info) -> bool:
    if selection.resident_key == "required":
        return True
    # "preferred" on a key with no free slot makes a non-discoverable credential rather than
    # fail with KEY_STORE_FULL, as Chromium and Safari do (remainingDiscoverableCredentials).
    return (
        selection.resident_key == "preferred"
        and info.options.get("rk") is True
        and info.remaining_discoverable_credentials != 0
    )


_UV_FAILED_USE_PIN: Final = (CtapStatus.PUAT_REQUIRED, CtapStatus.UV_INVALID)
# getPinUvAuthTokenUsingUvWithPermissions (CTAP 2.1 §6.5.5.7.3 steps 7-10): a mismatch is
# UV_INVALID (a retry spent), no retries left UV_BLOCKED; the PIN can still give a token.
_UV_TOKEN_FAILED_USE_PIN: Final = (CtapStatus.UV_INVALID, CtapStatus.UV_BLOCKED)


def _lbw_token_source(info: Info) -> str | None:
    """Where a platform gets a token with the lbw permission, in a browser's order of
    preference (python-fido2's ``Fido2Client._get_token``, Chromium's): built-in UV's own
    token (CTAP 2.1 §6.5.5.7.3), else the PIN (§6.5.5.7.2). Both need the "pinUvAuthToken"
    option: the legacy getPinToken grants only mc|ga. None when no lbw token can be had
    (an unprotected key needs none; otherwise the write will be refused)."""
    if info.options.get("pinUvAuthToken") is not True:
        return None
    if info.options.get("uv") is True:
        return "uv-token"
    if info.options.get("clientPin") is True:
        return "pin"
    return None


def _token_permission(
    command: Command, ceremony: Ceremony, flags: type[ClientPin.PERMISSION]
) -> ClientPin.PERMISSION:
    """The permissions to ask a token for: mc or ga for the command; with a largeBlob write
    also lbw, one token for the assertion and the write (getAssertion keeps only lbw, CTAP 2.1
    §6.2.2, which is what the write after it needs). ``flags`` is ``ClientPin.PERMISSION``."""
    permission = (
        flags.MAKE_CREDENTIAL if command == Command.MAKE_CREDENTIAL else flags.GET_ASSERTION
    )
    if ceremony.large_blob_write:
        permission |= flags.LARGE_BLOB_WRITE
    return permission


def _uv_method(info: Info, requirement: str) -> str | None:
    """How to verify the user: the built-in method, the PIN, or not at all."""
    if requirement == "discouraged":
        return None
    if info.options.get("uv") is True:
        return "uv"
    if info.options.get("clientPin") is True:
        return "pin"
    return None


def _hint_rank(hints: list[Any], info: Info) -> int:
    """§5.4.7 hints: order authenticators by the RP's first matching hint."""
    wanted = {"security-key": "cross-platform", "client-device": "platform", "hybrid": "hybrid"}
    for rank, hint in enumerate(hints):
        attachment = wanted.get(hint) if isinstance(hint, str) else None
        if attachment == info.attachment:
            return rank
    return len(hints)


_HINT_ATTACHMENTS: Final = {
    "security-key": "cross-platform",
    "client-device": "platform",
    "hybrid": "cross-platform",
}


def _hinted_attachment(hints: list[Any]) -> str | None:
    """The attachment the RP's first known hint stands for (L3 §5.8.7)."""
    for hint in hints:
        if isinstance(hint, str) and hint in _HINT_ATTACHMENTS:
            return _HINT_ATTACHMENTS[hint]
    return None


def _message(command: Command, request: dict[int, Any]) -> bytes:
    """The CTAP2 message. Maps are built in canonical key order (CTAP 2.1 §8), so plain
    encoding is canonical and four times cheaper than cbor2's sorting encoder; the rare
    members added out of order (enterprise attestation, formats) are sorted in here."""
    keys = list(request)
    if keys != sorted(keys):
        request = dict(sorted(request.items()))
    return bytes([command]) + cbor2.dumps(request)


def _canonical_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    """Text keys in CTAP2 canonical order: shorter first, then bytewise."""
    return {k: mapping[k] for k in sorted(mapping, key=lambda k: (len(k.encode()), k.encode()))}


def _decode(response: bytes, ceremony: Ceremony) -> dict[int, Any]:
    if not response:
        raise NotAllowedError("The authenticator sent an empty response.")
    status = response[0]
    if status != CtapStatus.OK:
        raise error_for_status(_STATUS_BY_BYTE.get(status, CtapStatus.OTHER), ceremony.name())
    try:
        body = cbor2.loads(response[1:])
    except Exception:
        raise NotAllowedError("The authenticator sent malformed CBOR.") from None
    if not isinstance(body, dict):
        raise NotAllowedError("The authenticator sent a malformed response.")
    return body


def _account_name(user: Any) -> str:
    if not isinstance(user, Mapping):
        return "(unknown account)"
    name = user.get("name") or user.get("displayName")
    if isinstance(name, str):
        return name
    user_id = user.get("id")
    return b64url(user_id) if isinstance(user_id, bytes) else "(unknown account)"


def _requires_large_blob(extensions: Mapping[str, Any]) -> bool:
    large_blob = extensions.get("largeBlob")
    return isinstance(large_blob, Mapping) and large_blob.get("support") == "required"


_CRED_PROTECT: Final = {
    "userVerificationOptional": 1,
    "userVerificationOptionalWithCredentialIDList": 2,
    "userVerificationRequired": 3,
}


def _registration_extensions(extensions: Mapping[str, Any], info: Info) -> dict[str, Any]:
    """Client extension inputs → authenticator extension inputs (WebAuthn §10, CTAP §12)."""
    if not extensions:
        return {}
    supported = info.extensions
    ctap: dict[str, Any] = {}
    policy = extensions.get("credentialProtectionPolicy")
    if isinstance(policy, str) and policy in _CRED_PROTECT:
        level = _CRED_PROTECT[policy]
        if "credProtect" in supported:
            ctap["credProtect"] = level
        elif extensions.get("enforceCredentialProtectionPolicy") is True and level > 1:
            # CTAP 2.1 §12.1: an enforced policy the authenticator cannot keep fails.
            raise NotAllowedError("The authenticator does not support credProtect.")
    if extensions.get("hmacCreateSecret") is True and "hmac-secret" in supported:
        ctap["hmac-secret"] = True
    if isinstance(extensions.get("prf"), Mapping) and "hmac-secret" in supported:
        ctap["hmac-secret"] = True
    if extensions.get("minPinLength") is True and (
        "minPinLength" in supported or info.options.get("setMinPINLength") is True
    ):
        # CTAP 2.1 §12.4: signalled by the setMinPINLength option, not in getInfo's list.
        ctap["minPinLength"] = True
    large_blob = extensions.get("largeBlob")
    if (
        isinstance(large_blob, Mapping)
        and "largeBlobKey" in supported
        and large_blob.get("support") in ("required", "preferred")
    ):
        ctap["largeBlobKey"] = True
    cred_blob = extensions.get("credBlob")
    if cred_blob is not None and "credBlob" in supported:
        ctap["credBlob"] = b64url_decode(cred_blob, "extensions.credBlob")
    return ctap


def _authentication_extensions(extensions: Mapping[str, Any], info: Info) -> dict[str, Any]:
    if not extensions:
        return {}
    ctap: dict[str, Any] = {}
    if extensions.get("getCredBlob") is True and "credBlob" in info.extensions:
        ctap["credBlob"] = True
    large_blob = extensions.get("largeBlob")
    if (
        isinstance(large_blob, Mapping)
        and large_blob.get("read") is True
        and "largeBlobKey" in info.extensions
    ):
        ctap["largeBlobKey"] = True
    return ctap


def _auth_data_extensions(auth_data: Any) -> dict[str, Any]:
    """The extension outputs at the end of authenticator data (WebAuthn §6.1)."""
    if not isinstance(auth_data, bytes) or len(auth_data) < 37 or not auth_data[32] & _ED:
        return {}
    if auth_data[32] & _AT:
        return _parse_auth_data(auth_data)[2]
    outputs = cbor2.loads(auth_data[37:])
    return outputs if isinstance(outputs, dict) else {}


def _parse_auth_data(auth_data: bytes) -> tuple[bytes, dict[int, Any], dict[str, Any]]:
    """Credential ID, COSE key and extension outputs of a registration's authData."""
    if len(auth_data) < 55 or not auth_data[32] & _AT:
        raise NotAllowedError("The authenticator sent no attested credential data.")
    length = int.from_bytes(auth_data[53:55], "big")
    credential_id = auth_data[55 : 55 + length]
    rest = auth_data[55 + length :]
    extensions: dict[str, Any] = {}
    if auth_data[32] & _ED:
        stream = BytesIO(rest)
        decoder = cbor2.CBORDecoder(stream)
        cose = decoder.decode()
        extensions = decoder.decode()
    else:
        cose = cbor2.loads(rest)
    return credential_id, cose, extensions


def _registration_json(
    body: dict[int, Any],
    client_data: bytes,
    info: Info,
    attestation: str,
    extensions: Mapping[str, Any],
    rk: bool,
) -> dict[str, Any]:
    fmt = body.get(MakeCredentialResponseKey.FMT)
    auth_data = body.get(MakeCredentialResponseKey.AUTH_DATA)
    statement = body.get(MakeCredentialResponseKey.ATT_STMT)
    if not isinstance(fmt, str) or not isinstance(auth_data, bytes):
        raise NotAllowedError("The authenticator sent a malformed attestation.")
    credential_id, cose, auth_extensions = _parse_auth_data(auth_data)
    if attestation not in ("direct", "enterprise", "indirect"):
        # §5.1.3 step 22 ("none"): keep self attestation with a zero AAGUID, otherwise
        # replace the statement. The AAGUID stays, as current browsers do (w3c/webauthn#2058).
        self_attestation = (
            fmt == "packed"
            and isinstance(statement, Mapping)
            and "x5c" not in statement
            and auth_data[37:53] == _ZERO_AAGUID
        )
        if not self_attestation:
            fmt, statement = "none", {}
    # Keys in canonical order (fmt, attStmt, authData); the statement keeps the authenticator's.
    attestation_object = cbor2.dumps({"fmt": fmt, "attStmt": statement, "authData": auth_data})
    response: dict[str, Any] = {
        "clientDataJSON": b64url(client_data),
        "authenticatorData": b64url(auth_data),
        "transports": list(info.transports),
        "publicKeyAlgorithm": cose.get(3),
        "attestationObject": b64url(attestation_object),
    }
    spki = spki_from_cose(cose)
    if spki is not None:
        response["publicKey"] = b64url(spki)
    results: dict[str, Any] = {}
    if extensions:
        if extensions.get("credProps") is True:
            results["credProps"] = {"rk": rk}
        if extensions.get("hmacCreateSecret") is True:
            results["hmacCreateSecret"] = auth_extensions.get("hmac-secret") is True
        if isinstance(extensions.get("prf"), Mapping):
            results["prf"] = {"enabled": auth_extensions.get("hmac-secret") is True}
        if isinstance(extensions.get("largeBlob"), Mapping):
            results["largeBlob"] = {"supported": MakeCredentialResponseKey.LARGE_BLOB_KEY in body}
        if extensions.get("credBlob") is not None:
            results["credBlob"] = auth_extensions.get("credBlob") is True
    return _credential_json(credential_id, response, info, results)


def _credential_json(
    credential_id: bytes, response: dict[str, Any], info: Info, results: dict[str, Any]
) -> dict[str, Any]:
    """The PublicKeyCredential.toJSON() shape shared by both ceremonies."""
    credential = b64url(credential_id)
    return {
        "id": credential,
        "rawId": credential,
        "response": response,
        "authenticatorAttachment": info.attachment,
        "clientExtensionResults": results,
        "type": PUBLIC_KEY,
    }


def _authentication_json(
    body: dict[int, Any],
    credential_id: bytes,
    client_data: bytes,
    info: Info,
    extensions: Mapping[str, Any],
) -> dict[str, Any]:
    auth_data = body.get(GetAssertionResponseKey.AUTH_DATA)
    signature = body.get(GetAssertionResponseKey.SIGNATURE)
    if not isinstance(auth_data, bytes) or not isinstance(signature, bytes):
        raise NotAllowedError("The authenticator sent a malformed assertion.")
    response: dict[str, Any] = {
        "clientDataJSON": b64url(client_data),
        "authenticatorData": b64url(auth_data),
        "signature": b64url(signature),
    }
    user = body.get(GetAssertionResponseKey.USER)
    if isinstance(user, Mapping) and isinstance(user.get("id"), bytes):
        response["userHandle"] = b64url(user["id"])
    results: dict[str, Any] = {}
    if extensions.get("getCredBlob") is True and len(auth_data) > 37 and auth_data[32] & _ED:
        outputs = cbor2.loads(auth_data[37:])
        blob = outputs.get("credBlob") if isinstance(outputs, Mapping) else None
        results["getCredBlob"] = b64url(blob if isinstance(blob, bytes) else b"")
    return _credential_json(credential_id, response, info, results)


__all__ = ["Ceremony", "CorePort", "DevicePort", "Info", "WebAuthnClient", "WebAuthnError"]
