"""Bad input never crashes the client: arbitrary JSON in any member of the options gives a
browser-named error (or a credential), and the client and authenticator keep working."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator
from transports.webauthn import WebAuthnClient, WebAuthnError, b64url

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
CREATE: dict[str, Any] = {
    "rp": {"id": "example.com", "name": "Example"},
    "user": {"id": b64url(b"u"), "name": "a", "displayName": "A"},
    "challenge": b64url(bytes(16)),
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    "authenticatorSelection": {"residentKey": "required"},
}
GET: dict[str, Any] = {"challenge": b64url(bytes(16)), "rpId": "example.com"}
CREATE_MEMBERS = [
    *CREATE,
    "excludeCredentials",
    "authenticatorSelection",
    "attestation",
    "extensions",
    "hints",
    "timeout",
]
GET_MEMBERS = [*GET, "allowCredentials", "userVerification", "extensions", "hints", "timeout"]

AUTHENTICATOR = Authenticator(strict=True)
CLIENT = WebAuthnClient("https://example.com", AUTHENTICATOR)


def _nested(value: Any, path: list[str], replacement: Any) -> Any:
    if not path:
        return replacement
    copy = dict(value) if isinstance(value, dict) else {}
    copy[path[0]] = _nested(copy.get(path[0]), path[1:], replacement)
    return copy


@given(
    member=st.sampled_from([*CREATE_MEMBERS, "rp.id", "user.id", "user.name", "rp"]),
    value=JSON,
)
def test_create_with_any_member(member: str, value: Any) -> None:
    options = _nested(CREATE, member.split("."), value)
    try:
        response = CLIENT.create(json.dumps(options))
    except WebAuthnError:
        pass
    else:
        assert response["type"] == "public-key"
    assert CLIENT.create(CREATE)["type"] == "public-key"


@given(member=st.sampled_from(GET_MEMBERS), value=JSON)
def test_get_with_any_member(member: str, value: Any) -> None:
    options = _nested(GET, [member], value)
    with contextlib.suppress(WebAuthnError):
        CLIENT.get(options)
    CLIENT.create(CREATE)
    assert CLIENT.get(GET)["type"] == "public-key"


@given(text=st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.hex()))
def test_any_text(text: str) -> None:
    for call in (CLIENT.create, CLIENT.get):
        with contextlib.suppress(WebAuthnError):
            call(text)
