"""A CBOR-level platform for PIN/UV unit tests: raw CTAP2 messages into the core, with
python-fido2's ``PinProtocolV1``/``PinProtocolV2`` as the independent peer for key agreement,
encryption and MACs. Unlike ``ClientPin`` it can send malformed or out-of-order requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2

from authenticator import Authenticator, Command, CtapStatus, PresencePolicy, approve
from authenticator.commands import (
    ClientPinKey,
    ClientPinResponseKey,
    ClientPinSubCommand,
    MakeCredentialKey,
)

PEERS: Final[dict[int, Any]] = {1: PinProtocolV1, 2: PinProtocolV2}
ES256: Final = [{"type": "public-key", "alg": -7}]


@dataclass(frozen=True)
class Reply:
    status: CtapStatus
    body: dict[int, Any]


def call(
    auth: Authenticator,
    command: int,
    params: dict[Any, Any] | None = None,
    presence: PresencePolicy = approve,
) -> Reply:
    """One CTAP2 command as a platform sends it: canonical CBOR after the command byte."""
    message = bytes([command]) + (b"" if params is None else cbor2.dumps(params, canonical=True))
    response = auth.call(message, presence)
    body = cbor2.loads(response[1:]) if len(response) > 1 else {}
    return Reply(CtapStatus(response[0]), body)


def pin_hash(pin: str | bytes) -> bytes:
    raw = pin.encode() if isinstance(pin, str) else pin
    return hashlib.sha256(raw).digest()[:16]


def padded(pin: str | bytes, size: int = 64) -> bytes:
    raw = pin.encode() if isinstance(pin, str) else pin
    return raw + bytes(max(0, size - len(raw)))


class PinPlatform:
    """The platform side of one PIN/UV auth protocol against one authenticator."""

    def __init__(self, auth: Authenticator, version: int = 2) -> None:
        self.auth = auth
        self.version = version
        self.peer: Any = PEERS[version]()

    def client_pin(
        self, sub: ClientPinSubCommand | int, presence: PresencePolicy = approve, **params: Any
    ) -> Reply:
        request: dict[int, Any] = {ClientPinKey.SUB_COMMAND: int(sub)}
        if "protocol" not in params:
            request[ClientPinKey.PIN_UV_AUTH_PROTOCOL] = self.version
        for name, value in params.items():
            key = ClientPinKey.PIN_UV_AUTH_PROTOCOL if name == "protocol" else ClientPinKey[name]
            if value is not None:
                request[key] = value
        return call(self.auth, Command.CLIENT_PIN, request, presence)

    def shared_secret(self) -> tuple[dict[int, Any], bytes]:
        """(our keyAgreement to send, the shared secret), from a fresh getKeyAgreement."""
        reply = self.client_pin(ClientPinSubCommand.GET_KEY_AGREEMENT)
        assert reply.status is CtapStatus.OK, reply.status
        key_agreement, secret = self.peer.encapsulate(
            reply.body[ClientPinResponseKey.KEY_AGREEMENT]
        )
        return dict(key_agreement), bytes(secret)

    def encrypt(self, secret: bytes, data: bytes) -> bytes:
        return bytes(self.peer.encrypt(secret, data))

    def authenticate(self, key: bytes, message: bytes) -> bytes:
        return bytes(self.peer.authenticate(key, message))

    def set_pin(self, pin: str | bytes, *, padded_pin: bytes | None = None) -> CtapStatus:
        key_agreement, secret = self.shared_secret()
        new_pin_enc = self.encrypt(secret, padded(pin) if padded_pin is None else padded_pin)
        return self.client_pin(
            ClientPinSubCommand.SET_PIN,
            KEY_AGREEMENT=key_agreement,
            NEW_PIN_ENC=new_pin_enc,
            PIN_UV_AUTH_PARAM=self.authenticate(secret, new_pin_enc),
        ).status

    def change_pin(self, old: str | bytes, new: str | bytes) -> CtapStatus:
        key_agreement, secret = self.shared_secret()
        new_pin_enc = self.encrypt(secret, padded(new))
        pin_hash_enc = self.encrypt(secret, pin_hash(old))
        return self.client_pin(
            ClientPinSubCommand.CHANGE_PIN,
            KEY_AGREEMENT=key_agreement,
            NEW_PIN_ENC=new_pin_enc,
            PIN_HASH_ENC=pin_hash_enc,
            PIN_UV_AUTH_PARAM=self.authenticate(secret, new_pin_enc + pin_hash_enc),
        ).status

    def token(
        self, pin: str | bytes, permissions: int | None = None, rp_id: str | None = None
    ) -> bytes | CtapStatus:
        """A pinUvAuthToken (legacy getPinToken when ``permissions`` is None), or the status."""
        key_agreement, secret = self.shared_secret()
        sub = (
            ClientPinSubCommand.GET_PIN_TOKEN
            if permissions is None
            else ClientPinSubCommand.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS
        )
        reply = self.client_pin(
            sub,
            KEY_AGREEMENT=key_agreement,
            PIN_HASH_ENC=self.encrypt(secret, pin_hash(pin)),
            PERMISSIONS=permissions,
            RP_ID=rp_id,
        )
        if reply.status is not CtapStatus.OK:
            return reply.status
        return bytes(self.peer.decrypt(secret, reply.body[ClientPinResponseKey.PIN_UV_AUTH_TOKEN]))

    def uv_token(
        self, permissions: int, rp_id: str | None = None, presence: PresencePolicy = approve
    ) -> bytes | CtapStatus:
        key_agreement, secret = self.shared_secret()
        reply = self.client_pin(
            ClientPinSubCommand.GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS,
            presence,
            KEY_AGREEMENT=key_agreement,
            PERMISSIONS=permissions,
            RP_ID=rp_id,
        )
        if reply.status is not CtapStatus.OK:
            return reply.status
        return bytes(self.peer.decrypt(secret, reply.body[ClientPinResponseKey.PIN_UV_AUTH_TOKEN]))

    def retries(self) -> tuple[int, bool]:
        reply = self.client_pin(ClientPinSubCommand.GET_PIN_RETRIES)
        assert reply.status is CtapStatus.OK, reply.status
        body = reply.body
        return body[ClientPinResponseKey.PIN_RETRIES], body[ClientPinResponseKey.POWER_CYCLE_STATE]

    def make_credential(
        self,
        token: bytes | None,
        rp_id: str,
        user_id: bytes,
        *,
        rk: bool = True,
        name: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Reply:
        """A makeCredential authorised by ``token`` (or none)."""
        cdh = hashlib.sha256(rp_id.encode() + user_id).digest()
        user: dict[str, Any] = {"id": user_id}
        if name is not None:
            user["name"] = name
        k = MakeCredentialKey
        params: dict[int, Any] = {
            k.CLIENT_DATA_HASH: cdh,
            k.RP: {"id": rp_id},
            k.USER: user,
            k.PUB_KEY_CRED_PARAMS: ES256,
            k.OPTIONS: {"rk": rk},
        }
        if extensions:
            params[k.EXTENSIONS] = extensions
        if token is not None:
            params[k.PIN_UV_AUTH_PARAM] = self.authenticate(token, cdh)
            params[k.PIN_UV_AUTH_PROTOCOL] = self.version
        return call(self.auth, Command.MAKE_CREDENTIAL, params)
