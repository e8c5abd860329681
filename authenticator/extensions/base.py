"""The ``Extension`` protocol and the per-ceremony records extensions read and fill in
(CTAP 2.1 §12, WebAuthn L3 §9).

Theory of operation. makeCredential (CTAP 2.1 §6.1.2) runs extensions in three phases:

1. ``parse_registration`` right after the command's options are checked: a malformed input
   fails the command before the user is asked for a touch (the spec is silent on when; failing
   early wastes no touch). ``None`` means "ignore this input" (e.g. ``credBlob`` larger than
   ``maxCredBlobLength`` still gets an output, but ``largeBlobKey`` without ``rk`` does not).
2. ``prepare_registration`` after user presence (step 15, "process any extensions"): decide
   what the new credential carries (credProtect level, sealed secrets, public state) and
   whether it needs a stored record rather than a wrapped ID.
3. ``registration_output`` once the credential exists (its ID is known): the authenticator
   extension outputs, the unsigned outputs and the ``largeBlobKey`` response member.

getAssertion (§6.2.2) parses inputs the same way and, for each credential it answers with
(including getNextAssertion), calls ``authentication_output``. Extensions never raise for a
credential that simply lacks their state: they return no output (CTAP 2.1 §12: the output keys
are a subset of the input keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from authenticator.context import Context


@dataclass(frozen=True, slots=True)
class CredentialView:
    """What an extension may read of one credential, wrapped or stored."""

    credential_id: bytes
    rp_id: str
    wrapped: bool  # the key lives in the ID (no store record)
    cred_protect: int = 1
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # public state
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)  # sealed state


@dataclass
class Registration:
    """One makeCredential's extension processing: its inputs and what extensions build."""

    ctx: Context
    rp_id: str
    rk: bool
    user_verified: bool
    user_present: bool = True
    cred_protect: int = 1
    needs_record: bool = False  # a wrapped ID cannot carry this state: store a record
    # Public per-credential state: StoredCredential.extra, or inside a wrapped ID (keep it
    # to a few bytes; anything larger sets needs_record).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)  # sealed secrets
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)  # authData extensions
    unsigned_outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    large_blob_key: bytes | None = field(default=None, repr=False)


@dataclass
class Authentication:
    """One assertion's extension processing for one credential."""

    ctx: Context
    rp_id: str
    user_verified: bool
    user_present: bool
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    unsigned_outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    large_blob_key: bytes | None = field(default=None, repr=False)


class Extension(Protocol):
    """One CTAP2 extension. ``name`` is its identifier in the CBOR extensions maps and in
    getInfo; ``advertised`` is False for extensions reported elsewhere (CTAP 2.1 §12.4:
    minPinLength is signalled by the ``setMinPINLength`` option, not in getInfo's list)."""

    @property
    def name(self) -> str: ...

    @property
    def advertised(self) -> bool: ...

    def available(self, ctx: Context) -> bool:
        """Whether this device can process it (e.g. hmac-secret needs a PIN/UV protocol)."""
        ...

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> Any | None: ...

    def prepare_registration(self, reg: Registration, value: Any) -> None: ...

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None: ...

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> Any | None: ...

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None: ...


class BaseExtension:
    """Defaults for the ``Extension`` protocol: ignore the input in the ceremonies an
    extension does not take part in."""

    name: str = ""
    advertised: bool = True

    def available(self, ctx: Context) -> bool:
        return True

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> Any | None:
        return None

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        return None

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        return None

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> Any | None:
        return None

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        return None
