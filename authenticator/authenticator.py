"""``Authenticator``: the sans-IO CTAP2 device. Bytes in, steps out.

Theory of operation: ``start(message)`` decodes a CTAP2 message (command byte, then CBOR),
parses it into a typed request and runs the command's handler, a generator, until it either
finishes (``Done``) or needs the user (``NeedPresence``). The transport then asks the user in
its own way and calls ``resume(outcome)``. One command runs at a time; starting another while a
handler waits abandons the waiting one as cancelled. Stateful continuations
(getNextAssertion, enumerations) share the single ``Context.pending`` slot, which any other
command clears. A power cycle is a new ``Authenticator`` over the same store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from authenticator import cbor
from authenticator.attestation import STATE_PREFIX as ATTESTATION_STATE
from authenticator.attestation import AttestationAuthority
from authenticator.bio_enrollment import BioEnrollmentRequest, bio_enrollment
from authenticator.bio_enrollment import enrolled as bio_enrolled
from authenticator.client_pin import ClientPinRequest, advertise_persistent_token, client_pin
from authenticator.clock import Clock, SystemClock
from authenticator.commands import Command, GetInfoKey
from authenticator.config import SECURITY_KEY, AttestationFormat, AuthenticatorConfig
from authenticator.config_command import ConfigRequest, authenticator_config
from authenticator.context import MASTER_KEY_STATE, Context, Handler
from authenticator.credential import MAX_CREDENTIAL_ID_LENGTH
from authenticator.credential_management import (
    CredentialManagementRequest,
    credential_management,
)
from authenticator.extensions import REGISTRY as EXTENSIONS
from authenticator.extensions import advertised as advertised_extensions
from authenticator.extensions.pin_complexity_policy import (
    advertise as advertise_pin_complexity_policy,
)
from authenticator.faults import Faults
from authenticator.get_assertion import get_assertion, get_next_assertion
from authenticator.keys import Entropy, SystemEntropy
from authenticator.large_blobs import LargeBlobsRequest, large_blobs
from authenticator.make_credential import make_credential
from authenticator.presence import Done, NeedPresence, Presence, PresencePolicy, Step, approve
from authenticator.requests import GetAssertionRequest, MakeCredentialRequest
from authenticator.status import CtapError, CtapStatus
from authenticator.store.base import Store
from authenticator.store.memory import MemoryStore
from authenticator.u2f import process_apdu, u2f_error_response
from authenticator.user_verification import advertise as advertise_pin_uv
from authenticator.user_verification import supported_pin_uv_protocols

log = logging.getLogger("fidoemu.authenticator")


@dataclass(frozen=True, slots=True)
class Route:
    parse: Callable[[dict[Any, Any]], Any] | None  # limits from the profile bound in
    handle: Callable[[Context, Any], Handler[dict[int, Any] | None]]


class Authenticator:
    """A virtual FIDO2 authenticator.

    ``store`` holds credentials and device state (default: a fresh ``MemoryStore``);
    ``attestation`` overrides the profile's format ("packed", "self", "none", "fido-u2f").
    ``strict=True`` re-raises internal errors instead of answering ``OTHER`` (tests use it).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        config: AuthenticatorConfig = SECURITY_KEY,
        attestation: AttestationFormat | str | None = None,
        clock: Clock | None = None,
        entropy: Entropy | None = None,
        strict: bool = False,
        faults: Faults | None = None,
    ) -> None:
        if attestation is not None:
            config = replace(config, attestation=AttestationFormat(attestation))
        self.config = config
        self.store: Store = store if store is not None else MemoryStore()
        self.strict = strict
        self.faults = faults  # deliberate misbehaviour for RP tests (faults.py); None: none
        clock = clock or SystemClock()
        entropy = entropy or SystemEntropy()
        self._ctx = Context(
            config=config,
            store=self.store,
            clock=clock,
            entropy=entropy,
            attestation=AttestationAuthority(self.store, entropy),
            sealer=Context.load_sealer(self.store, entropy),
            powered_up_at=clock.now(),
        )
        self._running: Generator[NeedPresence, Presence, bytes] | None = None
        self._routes: dict[int, Route] = {
            Command.MAKE_CREDENTIAL: Route(
                partial(MakeCredentialRequest.parse, max_list=config.max_credential_count_in_list),
                make_credential,
            ),
            Command.GET_ASSERTION: Route(
                partial(GetAssertionRequest.parse, max_list=config.max_credential_count_in_list),
                get_assertion,
            ),
            Command.GET_NEXT_ASSERTION: Route(None, lambda ctx, _req: get_next_assertion(ctx)),
            Command.GET_INFO: Route(None, lambda ctx, _req: _get_info(ctx)),
            Command.RESET: Route(None, lambda ctx, _req: self._reset()),
        }
        if _CTAP_2_1_VERSIONS & set(config.versions):
            # authenticatorSelection is CTAP 2.1 (§6.9); a CTAP 2.0 key does not know it.
            self._routes[Command.SELECTION] = Route(None, lambda ctx, _req: _selection())
        unknown = set(config.extensions) - set(EXTENSIONS)
        if unknown:
            raise ValueError(f"unknown extensions in the profile: {sorted(unknown)}")
        if config.large_blobs:
            self._routes[Command.LARGE_BLOBS] = Route(LargeBlobsRequest.parse, large_blobs)
        if config.bio_enrollment:
            bio = Route(BioEnrollmentRequest.parse, bio_enrollment)
            self._routes[Command.BIO_ENROLLMENT] = bio
            if config.bio_enrollment_preview:
                self._routes[Command.BIO_ENROLLMENT_PRE] = bio  # FIDO_2_1_PRE prototype
        if supported_pin_uv_protocols(self._ctx):
            self._routes[Command.CLIENT_PIN] = Route(ClientPinRequest.parse, client_pin)
        credman = Route(CredentialManagementRequest.parse, credential_management)
        if config.credential_management:
            self._routes[Command.CREDENTIAL_MANAGEMENT] = credman
        if config.credential_management_preview:
            self._routes[Command.CREDENTIAL_MANAGEMENT_PRE] = credman  # FIDO_2_1_PRE prototype
        if config.authenticator_config:
            self._routes[Command.CONFIG] = Route(ConfigRequest.parse, authenticator_config)

    def __repr__(self) -> str:
        return f"Authenticator({self.config.name!r}, store={self.store!r})"

    @property
    def context(self) -> Context:
        return self._ctx

    def attestation_root_pem(self) -> str:
        """The PEM root certificate to trust for this store's packed attestations."""
        return self._ctx.attestation.root_certificate_pem()

    # -- the sans-IO interface ------------------------------------------------------------

    def start(self, message: bytes) -> Step:
        """Begin a CTAP2 command (command byte + CBOR parameters)."""
        self._abandon()
        return self._advance(self._cbor_command(message), None)

    def u2f(self, apdu: bytes) -> Step:
        """Begin a CTAP1/U2F command (an ISO 7816-4 APDU, as carried by CTAPHID_MSG)."""
        self._abandon()
        if not self.config.u2f:
            return Done(u2f_error_response("INS_NOT_SUPPORTED"))
        self._ctx.pending = None
        return self._advance(self._u2f_command(apdu), None)

    def resume(self, presence: Presence) -> Step:
        """Answer the ``NeedPresence`` the last step asked for."""
        if self._running is None:
            raise RuntimeError("resume() without a pending NeedPresence")
        return self._advance(self._running, presence)

    def cancel(self) -> Step | None:
        """CTAPHID_CANCEL: the waiting command ends with KEEPALIVE_CANCEL."""
        if self._running is None:
            return None
        return self.resume(Presence.CANCELLED)

    def call(self, message: bytes, presence: PresencePolicy = approve) -> bytes:
        """Run a CTAP2 command to the end, answering presence requests with ``presence``."""
        step = self.start(message)
        while isinstance(step, NeedPresence):
            step = self.resume(presence(step))
        return step.response

    def call_u2f(self, apdu: bytes, presence: PresencePolicy = approve) -> bytes:
        step = self.u2f(apdu)
        while isinstance(step, NeedPresence):
            step = self.resume(presence(step))
        return step.response

    # -- internals ------------------------------------------------------------------------

    def _abandon(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None

    def _advance(
        self, running: Generator[NeedPresence, Presence, bytes], presence: Presence | None
    ) -> Step:
        try:
            step = running.send(presence) if presence is not None else next(running)
        except StopIteration as done:
            self._running = None
            return Done(done.value)
        except Exception:
            self._running = None
            raise
        self._running = running
        return step

    def _cbor_command(self, message: bytes) -> Generator[NeedPresence, Presence, bytes]:
        """Wrap a command's handler so every failure becomes one status byte."""
        try:
            response = yield from self._dispatch(message)
        except CtapError as error:
            log.debug("command 0x%02x -> %s", message[0] if message else -1, error)
            return self._misbehave(message, bytes([error.status]))
        except Exception:
            if self.strict:
                raise
            log.exception("internal error in command 0x%02x", message[0] if message else -1)
            return bytes([CtapStatus.OTHER])
        if response is None:
            return self._misbehave(message, _OK)
        encoded = _OK + cbor.encode_response(response, verify=self.strict)
        return self._misbehave(message, encoded)

    def _u2f_command(self, apdu: bytes) -> Generator[NeedPresence, Presence, bytes]:
        response = yield from process_apdu(self._ctx, apdu)
        faults = self.faults
        if faults is None or not faults.active():
            return response
        return faults.apply_u2f(self._ctx, apdu, response)  # the same one place, for CTAP1

    def _misbehave(self, message: bytes, response: bytes) -> bytes:
        """The one place deliberate faults apply, to a response already built correctly."""
        faults = self.faults
        if faults is None or not faults.active():
            return response
        return faults.apply(self._ctx, message, response)

    def _dispatch(self, message: bytes) -> Handler[dict[int, Any] | None]:
        """The command's handler, ready to run; a message that cannot start one raises here
        (a plain function, not a generator: one layer less for every yield and resume)."""
        if not message:
            raise CtapError(CtapStatus.INVALID_LENGTH, "empty message")
        command = message[0]
        route = self._routes.get(command)
        if route is None:
            raise CtapError(CtapStatus.INVALID_COMMAND, f"command 0x{command:02x}")
        # Any command but a stateful sequence's own continuation ends it (``continued_by``).
        if command not in getattr(self._ctx.pending, "continued_by", _ASSERTION_CONTINUATION):
            self._ctx.pending = None
        if len(message) > self.config.max_msg_size:
            raise CtapError(CtapStatus.REQUEST_TOO_LARGE, "message exceeds maxMsgSize")
        request = None
        if route.parse is not None:
            try:
                request = route.parse(cbor.decode_map(message[1:]))
            except CtapError:
                self._ctx.pending = None  # a malformed request continues nothing
                raise
        return route.handle(self._ctx, request)

    def _reset(self) -> Handler[None]:
        ctx = self._ctx
        # CTAP 2.1 §6.6: only within 10 s of power-up, and only with the user's touch.
        if ctx.clock.now() - ctx.powered_up_at > ctx.config.reset_window:
            raise CtapError(CtapStatus.NOT_ALLOWED, "reset is allowed only just after power-up")
        outcome = yield NeedPresence("", reason="reset")
        outcome.require()
        ctx.store.wipe(keep_prefix=ATTESTATION_STATE)
        ctx.store.put_state(MASTER_KEY_STATE, None)
        ctx.sealer = Context.load_sealer(ctx.store, ctx.entropy)  # revokes every wrapped ID
        ctx.forget_keys()
        ctx.pending = None
        ctx.extensions.clear()
        # PIN/UV runtime state goes too: no token, new key-agreement keys, no lockout.
        ctx.pin_token.reset()
        for protocol in ctx.pin_protocols.values():
            protocol.regenerate()
        ctx.pin_mismatches = 0
        return None


_ASSERTION_CONTINUATION: tuple[Command, ...] = (Command.GET_NEXT_ASSERTION,)
_OK: Final = bytes([CtapStatus.OK])
_CTAP_2_1_VERSIONS: frozenset[str] = frozenset({"FIDO_2_1", "FIDO_2_2"})
_PRE_VERSION: Final = "FIDO_2_1_PRE"


def _selection() -> Handler[None]:
    outcome = yield NeedPresence("", reason="selection")
    outcome.require()
    return None


def _get_info(ctx: Context) -> Handler[dict[int, Any]]:
    config = ctx.config
    options: dict[str, bool] = {
        "rk": config.resident_keys,
        "up": True,
        "plat": config.platform,
    }
    info: dict[int, Any] = {
        GetInfoKey.VERSIONS: list(config.versions),
        GetInfoKey.AAGUID: config.aaguid,
        GetInfoKey.OPTIONS: options,
        GetInfoKey.MAX_MSG_SIZE: config.max_msg_size,
        GetInfoKey.MAX_CREDENTIAL_COUNT_IN_LIST: config.max_credential_count_in_list,
        GetInfoKey.MAX_CREDENTIAL_ID_LENGTH: MAX_CREDENTIAL_ID_LENGTH,
        GetInfoKey.TRANSPORTS: list(config.transports),
        GetInfoKey.ALGORITHMS: [{"alg": int(a), "type": "public-key"} for a in config.algorithms],
        GetInfoKey.FIRMWARE_VERSION: config.firmware_version,
        GetInfoKey.REMAINING_DISCOVERABLE_CREDENTIALS: max(
            0, config.max_resident_credentials - ctx.store.discoverable_count()
        ),
    }
    advertise_pin_uv(ctx, options, info)
    advertise_pin_complexity_policy(ctx, info)
    advertise_persistent_token(ctx, info)
    extensions = advertised_extensions(ctx)
    if extensions:
        info[GetInfoKey.EXTENSIONS] = extensions
    if "credBlob" in extensions:
        info[GetInfoKey.MAX_CRED_BLOB_LENGTH] = config.max_cred_blob_length
    if config.large_blobs:
        options["largeBlobs"] = True
        info[GetInfoKey.MAX_SERIALIZED_LARGE_BLOB_ARRAY] = config.max_serialized_large_blob_array
    if config.bio_enrollment:
        options["bioEnroll"] = bio_enrolled(ctx)  # CTAP 2.1 §6.4: false = none enrolled yet
        if config.bio_enrollment_preview:
            # The FIDO_2_1_PRE name for 0x40, with the same value (as the YubiKey Bio).
            options["userVerificationMgmtPreview"] = options["bioEnroll"]
    if _PRE_VERSION not in config.versions and (
        config.credential_management_preview or config.bio_enrollment_preview
    ):
        # A prototype command (0x40, 0x41) is found through "FIDO_2_1_PRE" in versions
        # (python-fido2's is_supported, libfido2): listed before FIDO_2_1 as YubiKeys do.
        versions = list(config.versions)
        at = versions.index("FIDO_2_1") if "FIDO_2_1" in versions else len(versions)
        info[GetInfoKey.VERSIONS] = [*versions[:at], _PRE_VERSION, *versions[at:]]
    # Options come from several features; CTAP2 canonical order is shorter keys first.
    info[GetInfoKey.OPTIONS] = dict(sorted(options.items(), key=lambda o: (len(o[0]), o[0])))
    return info
    yield  # a generator, like every handler
