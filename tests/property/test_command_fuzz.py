"""Arbitrary bytes and arbitrary CBOR into every command: always one status byte (never an
internal error, the authenticator runs strict), and the device keeps answering getInfo."""

from __future__ import annotations

from typing import Any

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator, Command, CtapStatus, Presence
from authenticator.presence import NeedPresence
from authenticator.u2f import StatusWord

COMMAND_BYTES = st.sampled_from([int(c) for c in Command] + [0x00, 0x03, 0x05, 0x3F, 0xFF])

cbor_leaves = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.binary(max_size=80),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.integers(-30, 30), st.text(max_size=12)), inner, max_size=6),
    ),
    max_leaves=25,
)
# Maps that look like CTAP requests: the real keys, with arbitrary values.
request_maps = st.dictionaries(st.integers(min_value=0, max_value=16), cbor_values, max_size=10)


def _finish(auth: Authenticator, message: bytes, outcome: Presence) -> bytes:
    step = auth.start(message)
    while isinstance(step, NeedPresence):
        step = auth.resume(outcome)
    return step.response


def _assert_still_serving(auth: Authenticator) -> None:
    info = auth.call(bytes([Command.GET_INFO]))
    assert info[0] == CtapStatus.OK
    assert isinstance(cbor2.loads(info[1:]), dict)


def _assert_status(response: bytes) -> None:
    assert response, "empty response"
    status = CtapStatus(response[0])  # a known status code, or ValueError
    if status is not CtapStatus.OK:
        assert len(response) == 1


fuzz_auth = Authenticator(strict=True)  # one device across examples: state must survive too


@given(command=COMMAND_BYTES, body=st.binary(max_size=300), outcome=st.sampled_from(list(Presence)))
def test_arbitrary_bytes(command: int, body: bytes, outcome: Presence) -> None:
    _assert_status(_finish(fuzz_auth, bytes([command]) + body, outcome))
    _assert_still_serving(fuzz_auth)


@given(command=COMMAND_BYTES, params=request_maps, outcome=st.sampled_from(list(Presence)))
def test_arbitrary_cbor_maps(command: int, params: dict[int, Any], outcome: Presence) -> None:
    message = bytes([command]) + cbor2.dumps(params, canonical=True)
    _assert_status(_finish(fuzz_auth, message, outcome))
    _assert_still_serving(fuzz_auth)


@given(command=COMMAND_BYTES, value=cbor_values)
def test_arbitrary_cbor_items(command: int, value: Any) -> None:
    _assert_status(_finish(fuzz_auth, bytes([command]) + cbor2.dumps(value), Presence.APPROVED))


entity = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.binary(max_size=70), st.text(max_size=70), st.integers()),
        "name": st.one_of(st.text(max_size=80), st.binary(max_size=4)),
        "displayName": st.one_of(st.text(max_size=80), st.integers()),
        "icon": st.one_of(st.text(max_size=10), st.booleans()),
    },
)
descriptors = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["public-key", "other", 7]),
            "id": st.one_of(st.binary(max_size=80), st.text(max_size=3)),
            "transports": st.one_of(st.lists(st.text(max_size=5), max_size=2), st.integers()),
        },
    ),
    max_size=10,
)
make_credential_maps = st.fixed_dictionaries(
    {},
    optional={
        1: st.one_of(st.binary(min_size=30, max_size=34), st.text(max_size=3)),
        2: st.one_of(entity, st.integers()),
        3: st.one_of(entity, st.binary(max_size=3)),
        4: st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(["public-key", "x", 1]),
                        "alg": st.one_of(
                            st.sampled_from([-7, -8, -19, -35, -257, -1, 0]), st.text(max_size=2)
                        ),
                    },
                ),
                max_size=4,
            ),
            st.integers(),
        ),
        5: st.one_of(descriptors, st.integers()),
        6: st.one_of(st.dictionaries(st.text(max_size=10), cbor_values, max_size=3), st.integers()),
        7: st.one_of(
            st.dictionaries(
                st.sampled_from(["rk", "up", "uv", "zz"]),
                st.one_of(st.booleans(), st.integers(0, 1)),
                max_size=4,
            ),
            st.text(max_size=2),
        ),
        8: st.one_of(st.binary(max_size=33), st.integers()),
        9: st.one_of(st.integers(-1, 3), st.text(max_size=1)),
        10: st.integers(-1, 3),
    },
)


@given(params=make_credential_maps, outcome=st.sampled_from(list(Presence)))
def test_near_valid_make_credential(params: dict[int, Any], outcome: Presence) -> None:
    message = bytes([Command.MAKE_CREDENTIAL]) + cbor2.dumps(params, canonical=True)
    _assert_status(_finish(fuzz_auth, message, outcome))
    _assert_still_serving(fuzz_auth)


get_assertion_maps = st.fixed_dictionaries(
    {},
    optional={
        1: st.one_of(st.sampled_from(["example.com", ""]), st.binary(max_size=3)),
        2: st.one_of(st.binary(min_size=31, max_size=33), st.none()),
        3: st.one_of(descriptors, st.text(max_size=2)),
        4: st.one_of(st.dictionaries(st.text(max_size=10), cbor_values, max_size=3), st.integers()),
        5: st.one_of(
            st.dictionaries(
                st.sampled_from(["rk", "up", "uv"]), st.one_of(st.booleans(), st.none()), max_size=3
            ),
            st.integers(),
        ),
        6: st.binary(max_size=33),
        7: st.integers(-1, 3),
    },
)


@given(params=get_assertion_maps, outcome=st.sampled_from(list(Presence)))
def test_near_valid_get_assertion(params: dict[int, Any], outcome: Presence) -> None:
    message = bytes([Command.GET_ASSERTION]) + cbor2.dumps(params, canonical=True)
    _assert_status(_finish(fuzz_auth, message, outcome))
    _assert_still_serving(fuzz_auth)


KNOWN_WORDS = {int(w) for w in StatusWord}


@given(
    apdu=st.one_of(
        st.binary(max_size=300),
        st.tuples(
            st.sampled_from([0, 0x80]),
            st.integers(0, 4),
            st.integers(0, 9),
            st.binary(max_size=200),
        ).map(lambda t: bytes([t[0], t[1], t[2], 0, 0]) + len(t[3]).to_bytes(2, "big") + t[3]),
    ),
    outcome=st.sampled_from(list(Presence)),
)
def test_arbitrary_apdus_get_a_status_word(apdu: bytes, outcome: Presence) -> None:
    auth = fuzz_auth
    step = auth.u2f(apdu)
    while isinstance(step, NeedPresence):
        step = auth.resume(outcome)
    assert len(step.response) >= 2
    assert int.from_bytes(step.response[-2:], "big") in KNOWN_WORDS
    assert auth.call_u2f(b"\x00\x03\x00\x00") == b"U2F_V2\x90\x00"
