"""CTAP1/U2F (FIDO U2F Raw Message Formats v1.2): REGISTER, AUTHENTICATE, VERSION over
ISO 7816-4 APDUs, answered with ISO 7816 status words.

U2F key handles are wrapped credential IDs bound to the application parameter (the rpIdHash
of the AppID), so a key registered over U2F also answers CTAP2 getAssertion for an RP whose
rpId hashes to that AppID, which is how the WebAuthn ``appid`` extension works.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from authenticator.context import Context, Handler
from authenticator.credential import wrap_credential_id
from authenticator.keys import CoseAlgorithm, CredentialKey
from authenticator.presence import NeedPresence, Presence


class StatusWord(IntEnum):
    NO_ERROR = 0x9000
    WRONG_LENGTH = 0x6700
    CONDITIONS_NOT_SATISFIED = 0x6985  # "test of user presence required"
    WRONG_DATA = 0x6A80  # bad key handle
    INCORRECT_P1P2 = 0x6A86
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


class U2fInstruction(IntEnum):
    REGISTER = 0x01
    AUTHENTICATE = 0x02
    VERSION = 0x03


class AuthenticateControl(IntEnum):
    CHECK_ONLY = 0x07
    ENFORCE_USER_PRESENCE = 0x03
    DONT_ENFORCE_USER_PRESENCE = 0x08


U2F_VERSION: Final = b"U2F_V2"
REGISTER_RESERVED: Final = 0x05
MAX_KEY_HANDLE: Final = 255


class ApduError(Exception):
    def __init__(self, status_word: StatusWord) -> None:
        super().__init__(status_word.name)
        self.status_word = status_word


@dataclass(frozen=True, slots=True)
class Apdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes

    @classmethod
    def parse(cls, apdu: bytes) -> Apdu:
        """Short or extended length encoding (ISO 7816-4 §5.1, U2F raw messages §2)."""
        if len(apdu) < 4:
            raise ApduError(StatusWord.WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data = b""
        if not body:
            pass  # case 1
        elif body[0] == 0 and len(body) >= 3:  # extended: 00 Lc1 Lc2 data [Le1 Le2]
            lc = int.from_bytes(body[1:3], "big")
            data, trailer = body[3 : 3 + lc], body[3 + lc :]
            if len(data) != lc or len(trailer) not in (0, 2):
                raise ApduError(StatusWord.WRONG_LENGTH)
        elif len(body) == 1:
            pass  # case 2S: Le only
        else:  # short: Lc data [Le]
            lc = body[0]
            data, trailer = body[1 : 1 + lc], body[1 + lc :]
            if len(data) != lc or len(trailer) > 1:
                raise ApduError(StatusWord.WRONG_LENGTH)
        return cls(cla, ins, p1, p2, data)


def u2f_error_response(name: str) -> bytes:
    return struct.pack(">H", StatusWord[name])


def _ok(data: bytes) -> bytes:
    return data + struct.pack(">H", StatusWord.NO_ERROR)


def process_apdu(ctx: Context, raw: bytes) -> Handler[bytes]:
    """Run one APDU; the response is data followed by a status word (never an exception)."""
    try:
        apdu = Apdu.parse(raw)
        if apdu.cla != 0:
            raise ApduError(StatusWord.CLA_NOT_SUPPORTED)
        match apdu.ins:
            case U2fInstruction.VERSION:
                if apdu.data:
                    raise ApduError(StatusWord.WRONG_LENGTH)
                return _ok(U2F_VERSION)
            case U2fInstruction.REGISTER:
                return (yield from _register(ctx, apdu))
            case U2fInstruction.AUTHENTICATE:
                return (yield from _authenticate(ctx, apdu))
            case _:
                raise ApduError(StatusWord.INS_NOT_SUPPORTED)
    except ApduError as error:
        return struct.pack(">H", error.status_word)


def _user_present(outcome: Presence) -> None:
    # U2F has no "denied" or "timeout": anything but a touch is "test of user presence required".
    if outcome is not Presence.APPROVED:
        raise ApduError(StatusWord.CONDITIONS_NOT_SATISFIED)


def _register(ctx: Context, apdu: Apdu) -> Handler[bytes]:
    if len(apdu.data) != 64:
        raise ApduError(StatusWord.WRONG_LENGTH)
    challenge, application = apdu.data[:32], apdu.data[32:]
    _user_present((yield NeedPresence("", reason="U2F register")))
    key = CredentialKey.generate(CoseAlgorithm.ES256, ctx.entropy)
    key_handle = wrap_credential_id(ctx.sealer, application, key)
    public_key = key.uncompressed_point()
    batch = ctx.attestation.batch(ctx.config.aaguid)
    signature = batch.key.sign(b"\x00" + application + challenge + key_handle + public_key)
    certificate = batch.certificate_der
    return _ok(
        bytes([REGISTER_RESERVED])
        + public_key
        + bytes([len(key_handle)])
        + key_handle
        + certificate
        + signature
    )


def _authenticate(ctx: Context, apdu: Apdu) -> Handler[bytes]:
    data = apdu.data
    if len(data) < 65 or len(data) != 65 + data[64]:
        raise ApduError(StatusWord.WRONG_LENGTH)
    challenge, application, key_handle = data[:32], data[32:64], data[65:]
    if apdu.p1 not in tuple(AuthenticateControl):
        raise ApduError(StatusWord.INCORRECT_P1P2)
    unwrapped = ctx.unwrap(application, key_handle)
    if unwrapped is None:
        raise ApduError(StatusWord.WRONG_DATA)
    if apdu.p1 == AuthenticateControl.CHECK_ONLY:
        # U2F raw messages §5.1: a valid handle answers "conditions not satisfied".
        raise ApduError(StatusWord.CONDITIONS_NOT_SATISFIED)
    flags = 0
    if apdu.p1 == AuthenticateControl.ENFORCE_USER_PRESENCE:
        _user_present((yield NeedPresence("", reason="U2F authenticate")))
        flags = 0x01
    counter = ctx.next_sign_count(key_handle)
    signed = application + struct.pack(">BI", flags, counter) + challenge
    signature = unwrapped.key.sign(signed)
    return _ok(struct.pack(">BI", flags, counter) + signature)
