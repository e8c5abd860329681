"""credBlob (CTAP 2.1 §12.2): a small opaque value the RP stores with the credential at
registration and reads back in any later assertion.

A wrapped credential ID has no room for it (credential IDs stay within 128 bytes), so a
credential created with credBlob is always a stored record, as OpenSK's resident ones are.
"""

from __future__ import annotations

from typing import Any, Final

from authenticator.context import Context
from authenticator.extensions.base import (
    Authentication,
    BaseExtension,
    CredentialView,
    Registration,
)
from authenticator.status import CtapError, CtapStatus

EXTRA_KEY: Final = "credBlob"


class CredBlobExtension(BaseExtension):
    name = "credBlob"

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bytes:
        if not isinstance(value, bytes):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "credBlob must be a byte string")
        return value

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        # §12.2: a blob longer than maxCredBlobLength is not stored; the output says false.
        if len(value) <= reg.ctx.config.max_cred_blob_length:
            reg.extra[EXTRA_KEY] = bytes(value)
            reg.needs_record = True

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        reg.outputs[self.name] = EXTRA_KEY in credential.extra

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> bool | None:
        if not isinstance(value, bool):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "credBlob must be true")
        return True if value else None

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        # §12.2: an empty byte string when the credential has no blob.
        blob = credential.extra.get(EXTRA_KEY, b"")
        auth.outputs[self.name] = blob if isinstance(blob, bytes) else b""
