"""A WebAuthn client (the browser's role) for relying-party tests: W3C JSON options in,
``PublicKeyCredential.toJSON()`` out, over in-process authenticators or any python-fido2
``CtapDevice``, with scripted users, traces and DOMException-named errors (WebAuthn L3 §5.1)."""

from __future__ import annotations

from transports.webauthn.client import Ceremony, Info, WebAuthnClient
from transports.webauthn.codec import b64url, b64url_decode, client_data_json
from transports.webauthn.errors import (
    AbortError,
    ConstraintError,
    EncodingError,
    InvalidStateError,
    NotAllowedError,
    NotSupportedError,
    OptionsTypeError,
    SecurityError,
    WebAuthnError,
)
from transports.webauthn.trace import Exchange, Trace
from transports.webauthn.user import (
    Prompt,
    ScriptedUser,
    ScriptError,
    abort,
    approve,
    cancel,
    choose_account,
    choose_authenticator,
    deny,
    enter_pin,
    time_out,
    uv_fail,
    wait,
    wrong_pin,
)

__all__ = [
    "AbortError",
    "Ceremony",
    "ConstraintError",
    "EncodingError",
    "Exchange",
    "Info",
    "InvalidStateError",
    "NotAllowedError",
    "NotSupportedError",
    "OptionsTypeError",
    "Prompt",
    "ScriptError",
    "ScriptedUser",
    "SecurityError",
    "Trace",
    "WebAuthnClient",
    "WebAuthnError",
    "abort",
    "approve",
    "b64url",
    "b64url_decode",
    "cancel",
    "choose_account",
    "choose_authenticator",
    "client_data_json",
    "deny",
    "enter_pin",
    "time_out",
    "uv_fail",
    "wait",
    "wrong_pin",
]
