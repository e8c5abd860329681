"""largeBlobKey (CTAP 2.1 §12.3): a per-credential 32-byte key the platform uses to find and
encrypt this credential's entry in the large-blob array (see ``large_blobs.py``).

Only discoverable credentials get one (the large-blob array is for credentials the platform
can find without the RP). The key is a secret: it is sealed with the credential's private
key and returned in the response's ``largeBlobKey`` member, never in authenticator data.
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

SECRET_KEY: Final = "largeBlobKey"  # noqa: S105 - a name, not a secret
LARGE_BLOB_KEY_SIZE: Final = 32


def _parse_true(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "largeBlobKey must be a boolean")
    if not value:
        # §12.3: the input is always true; false is an invalid option.
        raise CtapError(CtapStatus.INVALID_OPTION, "largeBlobKey must be true")
    return True


class LargeBlobKeyExtension(BaseExtension):
    name = "largeBlobKey"

    def available(self, ctx: Context) -> bool:
        return ctx.config.large_blobs

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bool | None:
        _parse_true(value)
        # A non-discoverable credential gets no key; the extension is ignored (as OpenSK).
        return True if rk else None

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        reg.secrets[SECRET_KEY] = reg.ctx.entropy.random_bytes(LARGE_BLOB_KEY_SIZE)

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        reg.large_blob_key = credential.secrets.get(SECRET_KEY)

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> bool:
        return _parse_true(value)

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        auth.large_blob_key = credential.secrets.get(SECRET_KEY)
