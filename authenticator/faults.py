"""Deliberate misbehaviour for relying-party tests (how a device can go wrong, as opposed to
``AuthenticatorConfig``, what it is). Every flag is off by default.

Faults are applied in one place, ``Faults.apply`` (CTAP2) and ``Faults.apply_u2f`` (CTAP1
U2F_AUTHENTICATE), called by ``Authenticator`` after a correct response has been built, so the
correct paths stay free of test switches. A fault that changes
signed data (authenticator data) signs again with the right key, so that the one thing wrong
with the response is the fault itself: a relying party that passes a test with
``wrong_rp_id_hash`` set is checking signatures but not the RP ID hash (WebAuthn §7.1 step 15,
§7.2 step 15). ``docs/scenarios.md`` lists every fault with what the relying party sees.
"""

from __future__ import annotations

import struct
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Final

from authenticator import cbor
from authenticator.auth_data import AuthDataFlag
from authenticator.commands import (
    Command,
    GetAssertionKey,
    GetAssertionResponseKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from authenticator.config import CounterMode
from authenticator.context import Context, rp_id_hash
from authenticator.keys import CredentialKey
from authenticator.status import CtapStatus
from authenticator.u2f import Apdu, ApduError, StatusWord, U2fInstruction

# Authenticator data layout (WebAuthn §6.1): rpIdHash, flags, signCount, attested data.
_FLAGS: Final = 32
_COUNTER: Final = slice(33, 37)
_AAGUID: Final = slice(37, 53)
_CRED_ID_LENGTH: Final = slice(53, 55)
WRONG_RP_ID: Final = "evil.example"
"""The RP ID whose hash ``wrong_rp_id_hash`` reports, as a relay for another site would."""


@dataclass
class Faults:
    """Deliberate misbehaviour; mutable so a test can switch faults between ceremonies."""

    # A CTAP status answered for a command instead of its real outcome, after the command has
    # run (e.g. a key that times out or loses its answer: USER_ACTION_TIMEOUT, OTHER).
    force_status: dict[Command, CtapStatus] = field(default_factory=dict)
    # A cloned key: while on, assertions carry a counter below the last one the relying party
    # saw (the value before it, at least 0), as a copy of the key made one use ago shows once
    # the original has signed since; the counter goes backwards on the first faulted
    # assertion and stays there (WebAuthn §6.1.1, §7.2 step 21). With the global counter
    # the last value a credential showed is not known, so the copy shows 0.
    counter_regression: bool = False
    # A fixed signature counter in every response: 0 imitates keys and passkey providers with
    # no counter; a value near 2**32 a counter about to wrap.
    sign_count: int | None = None
    # A corrupted assertion signature: a faulty key, or a man in the middle changing data.
    invalid_signature: bool = False
    # The hash of another RP ID (``WRONG_RP_ID``), correctly signed: an authenticator or relay
    # answering for a different site (phishing through a proxy).
    wrong_rp_id_hash: bool = False
    # UP flag cleared, correctly signed: a silent authentication without a touch (a buggy or
    # malicious authenticator, or a platform that sent up=false).
    user_present_off: bool = False
    # UV flag cleared, correctly signed: the user was not verified (a PIN-less key, UV skipped).
    user_verified_off: bool = False
    # UV flag set without verification, correctly signed: an authenticator lying about UV.
    user_verified_on: bool = False
    # The backup-eligibility bit inverted: a passkey provider changing its mind (BE must never
    # change for a credential, WebAuthn §6.1.3), as reported for iCloud Keychain's first hours.
    flip_backup_eligible: bool = False
    # The backup-state bit inverted: a credential synced (or no longer synced) since last use.
    flip_backup_state: bool = False
    # getAssertion without its user entity: a CTAP 2.0 key or a buggy one; a discoverable login
    # then has no userHandle (WebAuthn §7.2 step 6 must fail).
    omit_user: bool = False
    # An attestation statement with a corrupted signature and certificate: a counterfeit or
    # damaged key, or a bug in a software authenticator.
    malformed_attestation: bool = False
    # A different AAGUID in registrations, attested with a batch certificate that carries it:
    # another make and model (to test AAGUID allow lists and metadata lookups).
    aaguid: bytes | None = None
    # getNextAssertion signs over the clientDataHash of the getAssertion before it.
    _last_assertion: tuple[str, bytes] = field(
        default=("", b""), init=False, repr=False, compare=False
    )
    _frozen_counters: dict[bytes, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def active(self) -> bool:
        return any(_on(getattr(self, f.name)) for f in _flags())

    def clear(self) -> None:
        """Switch every fault off."""
        for f in _flags():
            factory = f.default_factory
            setattr(self, f.name, factory() if factory is not MISSING else f.default)
        self._frozen_counters.clear()

    def apply(self, ctx: Context, message: bytes, response: bytes) -> bytes:
        """The response as the misbehaving device sends it, for a CTAP2 ``message``."""
        command = message[0] if message else -1
        forced = self.force_status.get(Command(command)) if command in _COMMANDS else None
        if forced is not None:
            return bytes([forced])
        if not response or response[0] != CtapStatus.OK or len(response) == 1:
            return response
        if command == Command.MAKE_CREDENTIAL:
            return self._make_credential(ctx, message, response)
        if command in (Command.GET_ASSERTION, Command.GET_NEXT_ASSERTION):
            return self._assertion(ctx, message, response)
        return response

    def apply_u2f(self, ctx: Context, apdu: bytes, response: bytes) -> bytes:
        """The response as the misbehaving device sends it, for a CTAP1/U2F ``apdu``.

        U2F_AUTHENTICATE only (FIDO U2F raw messages §5.4): its response is user presence
        (1 byte), counter (4), signature (DER), status word (2), over ``application ·
        presence · counter · challenge``. ``counter_regression``, ``sign_count`` and
        ``user_present_off`` re-sign; ``invalid_signature`` corrupts the signature.
        """
        if (
            len(apdu) < 7
            or apdu[1] != U2fInstruction.AUTHENTICATE
            or response[-2:] != _U2F_OK
            or len(response) < _U2F_SIGNATURE + 2
        ):
            return response
        try:
            request = Apdu.parse(apdu)
        except ApduError:
            return response
        challenge, application = request.data[:32], request.data[32:64]
        key_handle = request.data[65:]
        presence, counter = response[0], response[1:_U2F_SIGNATURE]
        signature = response[_U2F_SIGNATURE:-2]
        new_presence = presence & ~AuthDataFlag.UP if self.user_present_off else presence
        if self.sign_count is not None:
            counter = struct.pack(">I", self.sign_count & 0xFFFFFFFF)
        if self.counter_regression:
            count = struct.unpack(">I", counter)[0]
            counter = struct.pack(
                ">I", self._frozen_counters.setdefault(key_handle, _cloned_count(ctx, count))
            )
        if (new_presence, counter) != (presence, response[1:_U2F_SIGNATURE]):
            unwrapped = ctx.unwrap(application, key_handle)
            if unwrapped is None:  # it signed a moment ago, so it unwraps now
                raise LookupError("a faulted U2F response names a key handle it cannot unwrap")
            signed = application + bytes([new_presence]) + counter + challenge
            signature = unwrapped.key.sign(signed)
        if self.invalid_signature:
            signature = _corrupt(signature)
        return bytes([new_presence]) + counter + signature + _U2F_OK

    # -- internals ------------------------------------------------------------------------

    def _auth_data(self, auth_data: bytes) -> bytes:
        data = bytearray(auth_data)
        if self.wrong_rp_id_hash:
            data[:32] = rp_id_hash(WRONG_RP_ID)
        flags = data[_FLAGS]
        if self.user_present_off:
            flags &= ~AuthDataFlag.UP
        if self.user_verified_off:
            flags &= ~AuthDataFlag.UV
        if self.user_verified_on:
            flags |= AuthDataFlag.UV
        if self.flip_backup_eligible:
            flags ^= AuthDataFlag.BE
        if self.flip_backup_state:
            flags ^= AuthDataFlag.BS
        data[_FLAGS] = flags & 0xFF
        if self.sign_count is not None:
            data[_COUNTER] = struct.pack(">I", self.sign_count & 0xFFFFFFFF)
        return bytes(data)

    def _make_credential(self, ctx: Context, message: bytes, response: bytes) -> bytes:
        body: dict[int, Any] = cbor.loads_lenient(response[1:])
        request: dict[int, Any] = cbor.loads_lenient(message[1:])
        auth_data: bytes = body[MakeCredentialResponseKey.AUTH_DATA]
        new = self._auth_data(auth_data)
        if self.aaguid is not None and body[MakeCredentialResponseKey.FMT] != "fido-u2f":
            new = new[: _AAGUID.start] + self.aaguid + new[_AAGUID.stop :]
        if new != auth_data:
            rp_id: str = request[MakeCredentialKey.RP]["id"]
            length = int.from_bytes(new[_CRED_ID_LENGTH], "big")
            credential_id = new[_CRED_ID_LENGTH.stop : _CRED_ID_LENGTH.stop + length]
            key = _credential_key(ctx, rp_id, credential_id)
            attestation = ctx.attestation.attest(
                ctx.config.attestation,
                self.aaguid or ctx.config.aaguid,
                new,
                request[MakeCredentialKey.CLIENT_DATA_HASH],
                key,
            )
            body[MakeCredentialResponseKey.AUTH_DATA] = new
            body[MakeCredentialResponseKey.FMT] = attestation.fmt
            body[MakeCredentialResponseKey.ATT_STMT] = attestation.statement
        if self.malformed_attestation:
            statement = dict(body[MakeCredentialResponseKey.ATT_STMT])
            if "sig" in statement:
                statement["sig"] = _corrupt(statement["sig"])
            else:
                statement["sig"] = b"\x30\x00"  # 'none' gains a statement it must not have
            if "x5c" in statement:
                statement["x5c"] = [_corrupt(c) for c in statement["x5c"]]
            body[MakeCredentialResponseKey.ATT_STMT] = statement
        return bytes([CtapStatus.OK]) + cbor.encode(body)

    def _assertion(self, ctx: Context, message: bytes, response: bytes) -> bytes:
        body: dict[int, Any] = cbor.loads_lenient(response[1:])
        if message[0] == Command.GET_NEXT_ASSERTION:
            rp_id, client_data_hash = self._last_assertion
        else:
            request: dict[int, Any] = cbor.loads_lenient(message[1:])
            client_data_hash = request[GetAssertionKey.CLIENT_DATA_HASH]
            rp_id = request[GetAssertionKey.RP_ID]
            self._last_assertion = (rp_id, client_data_hash)
        credential_id: bytes = body[GetAssertionResponseKey.CREDENTIAL]["id"]
        auth_data: bytes = body[GetAssertionResponseKey.AUTH_DATA]
        new = self._auth_data(auth_data)
        if self.counter_regression:
            count = struct.unpack(">I", new[_COUNTER])[0]
            frozen = self._frozen_counters.setdefault(credential_id, _cloned_count(ctx, count))
            new = new[: _COUNTER.start] + struct.pack(">I", frozen) + new[_COUNTER.stop :]
        signature: bytes = body[GetAssertionResponseKey.SIGNATURE]
        if new != auth_data:
            key = _credential_key(ctx, rp_id, credential_id)
            signature = key.sign(new + client_data_hash)
            body[GetAssertionResponseKey.AUTH_DATA] = new
        if self.invalid_signature:
            signature = _corrupt(signature)
        body[GetAssertionResponseKey.SIGNATURE] = signature
        if self.omit_user:
            body.pop(GetAssertionResponseKey.USER, None)
        return bytes([CtapStatus.OK]) + cbor.encode(body)


_COMMANDS: Final = frozenset(int(c) for c in Command)
_U2F_OK: Final = struct.pack(">H", StatusWord.NO_ERROR)
_U2F_SIGNATURE: Final = 5  # U2F_AUTHENTICATE response: presence(1), counter(4), signature


def _corrupt(data: bytes) -> bytes:
    """The same bytes with the last one changed: still well-formed CBOR, no longer valid."""
    if not data:
        return b"\x00"
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _cloned_count(ctx: Context, count: int) -> int:
    """What a clone made one use ago shows instead of ``count``: below the value the relying
    party saw last (``count - 1`` for a per-credential counter), never below 0."""
    if ctx.config.counter is CounterMode.PER_CREDENTIAL:
        return max(0, count - 2)
    return 0  # a global counter: the credential's last value is unknown, 0 is below it


def _credential_key(ctx: Context, rp_id: str, credential_id: bytes) -> CredentialKey:
    unwrapped = ctx.unwrap(rp_id_hash(rp_id), credential_id)
    if unwrapped is not None:
        return unwrapped.key
    stored = ctx.store.get(credential_id)
    if stored is None:
        raise LookupError("a faulted response names a credential this device does not have")
    return ctx.open_secrets(stored).key


def _on(value: object) -> bool:
    # A fixed sign_count of 0 is a fault too: only None, False and {} mean "off".
    return not (value is None or value is False or value == {})


def _flags() -> list[Any]:
    return [f for f in fields(Faults) if not f.name.startswith("_")]
