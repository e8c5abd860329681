"""The exceptions a WebAuthn client raises, named like the browser's DOMException names
(WebAuthn L3 §5.1.3, §5.1.4 and Web IDL §2.8.1), and the one mapping from CTAP status codes.

A relying-party test asserts on the same names its front end sees: ``NotAllowedError`` for a
denied or timed-out ceremony, ``InvalidStateError`` for an excluded credential, and so on.
"""

from __future__ import annotations

from typing import ClassVar

from authenticator.status import CtapStatus


class WebAuthnError(Exception):
    """Base class; ``name`` is the DOMException (or ECMAScript error) name."""

    name: ClassVar[str] = "Error"

    def __init__(self, message: str = "", *, status: CtapStatus | None = None) -> None:
        super().__init__(message or self.name)
        self.message = message or self.name
        self.status = status  # the CTAP status behind it, when an authenticator answered one

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message}


class NotAllowedError(WebAuthnError):
    """The user denied, the ceremony timed out, or no credential/authenticator fits."""

    name = "NotAllowedError"


class InvalidStateError(WebAuthnError):
    """An excluded credential is already on the authenticator (WebAuthn §5.1.3 step 20)."""

    name = "InvalidStateError"


class SecurityError(WebAuthnError):
    """The RP ID is not a registrable domain suffix of the origin, or the origin is unsafe."""

    name = "SecurityError"


class NotSupportedError(WebAuthnError):
    """No supported credential type/algorithm in pubKeyCredParams."""

    name = "NotSupportedError"


class ConstraintError(WebAuthnError):
    """The authenticator cannot meet a requirement (resident key, user verification)."""

    name = "ConstraintError"


class AbortError(WebAuthnError):
    """The page aborted the ceremony through its AbortSignal."""

    name = "AbortError"


class EncodingError(WebAuthnError):
    """A base64url member of the options JSON does not decode (parseCreationOptionsFromJSON)."""

    name = "EncodingError"


class SyntaxError_(WebAuthnError):
    """DOMException "SyntaxError": malformed extension input the spec names it for (WebAuthn
    L3 §10.1.4: a prf.evalByCredential key that is empty, not base64url, or not an
    allowCredentials ID). The trailing underscore keeps Python's builtin SyntaxError intact."""

    name = "SyntaxError"


class OptionsTypeError(WebAuthnError, TypeError):
    """The options are malformed (a required member missing, a wrong type): ECMAScript's
    TypeError in a browser."""

    name = "TypeError"


ERRORS: dict[str, type[WebAuthnError]] = {
    cls.name: cls
    for cls in (
        NotAllowedError,
        InvalidStateError,
        SecurityError,
        NotSupportedError,
        ConstraintError,
        AbortError,
        EncodingError,
        SyntaxError_,
        OptionsTypeError,
    )
}
"""Error classes by browser name (the browser bridge rebuilds exceptions from these)."""


def error_for_status(status: CtapStatus, ceremony: str) -> WebAuthnError:
    """What a browser reports for an authenticator's failure status (Chromium's mapping:
    almost everything the user could cause is NotAllowedError, so a page learns nothing)."""
    if status is CtapStatus.CREDENTIAL_EXCLUDED:
        return InvalidStateError(
            "The authenticator already holds one of the excluded credentials.", status=status
        )
    if status is CtapStatus.UNSUPPORTED_ALGORITHM:
        return NotSupportedError(
            "The authenticator supports none of the requested algorithms.", status=status
        )
    # KEY_STORE_FULL falls through to NotAllowedError: WebAuthn L3 §5.1.3 step 22 passes on
    # only InvalidStateError from an authenticator (any other error status removes it from
    # issuedRequests, so the ceremony ends as NotAllowedError), and Chromium, after its
    # "storage full" sheet, rejects with NotAllowedError too. ConstraintError is for a
    # client that knows beforehand that no authenticator can store a discoverable
    # credential (§6.3.2, authenticatorMakeCredential), which this client reports as
    # NotAllowedError as well (its capability filter leaves no authenticator).
    # Chromium's wording: the page must not learn why (WebAuthn §14.5.2 privacy); the status
    # stays available to the test as ``error.status`` and in the trace.
    return NotAllowedError(NOT_ALLOWED_MESSAGE, status=status)


NOT_ALLOWED_MESSAGE = (
    "The operation either timed out or was not allowed. "
    "See: https://www.w3.org/TR/webauthn-2/#sec-assertion-privacy."
)
