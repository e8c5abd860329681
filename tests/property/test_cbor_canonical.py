"""``cbor.decode`` accepts exactly the CTAP2-canonical encodings (CTAP 2.1 §8): whatever
shortcut it takes for the common case, its verdict equals the full rule "re-encoding the
decoded value canonically gives back the same bytes"."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authenticator import cbor
from authenticator.status import CtapError, CtapStatus

leaves = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-30, max_value=30),
    st.binary(max_size=30),
    st.text(max_size=8),
    st.text(alphabet="ab\u00e9\u4e2d", max_size=4),  # non-ASCII keys sort by UTF-8 length
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, width=16),
    st.floats(allow_nan=False),
)
keys = st.one_of(
    st.integers(min_value=-30, max_value=30),
    st.integers(min_value=-(2**33), max_value=2**33),
    st.text(max_size=30),
    st.text(alphabet="ab\u00e9", max_size=3),
    st.booleans(),
    st.binary(max_size=3),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
        st.dictionaries(st.integers(-25, 25), inner, max_size=5),  # CTAP-like maps
        st.dictionaries(st.text("abcdef", max_size=4), inner, max_size=5),
    ),
    max_leaves=20,
)


def _reorder(value: Any, data: st.DataObject) -> Any:
    """The same value with every map's entries in an arbitrary order."""
    if isinstance(value, dict):
        items = data.draw(st.permutations(list(value.items())))
        return {k: _reorder(v, data) for k, v in items}
    if isinstance(value, list):
        return [_reorder(v, data) for v in value]
    return value


def _canonical(data: bytes) -> bool:
    """The full rule, computed independently of the decoder's shortcut."""
    try:
        value = cbor2.loads(data, allow_indefinite=False, allow_duplicate_keys=False)
        return bool(cbor2.dumps(value, canonical=True) == data)
    except Exception:
        return False


def _accepted(data: bytes) -> bool:
    status = CtapStatus.OK
    try:
        cbor.decode(data)
    except CtapError as error:
        status = error.status
    assert status in (CtapStatus.OK, CtapStatus.INVALID_CBOR)
    return status is CtapStatus.OK


@given(values, st.data())
def test_verdict_equals_the_canonical_rule(value: Any, data: st.DataObject) -> None:
    for encoded in (
        cbor2.dumps(value, canonical=True),
        cbor2.dumps(value),  # floats widened, maps in insertion order
        cbor2.dumps(_reorder(value, data)),
    ):
        assert _accepted(encoded) == _canonical(encoded)


@given(values, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_verdict_on_mutated_encodings(value: Any, position: int, byte: int) -> None:
    encoded = bytearray(cbor2.dumps(value, canonical=True))
    encoded[position % len(encoded)] = byte
    assert _accepted(bytes(encoded)) == _canonical(bytes(encoded))


@pytest.mark.parametrize(
    ("encoded", "accepted"),
    [
        ("a201020301", True),  # {1: 2, 3: 1}
        ("a203010102", False),  # keys out of order
        ("a2200101ff", False),  # {-1: 1, 1: ...}: -1 (0x20) sorts after 1
        ("a2012001ff", False),  # truncated
        ("a2616101626161ff", False),  # trailing byte
        ("a2616201616100", False),  # "b" before "a"
        ("a2616101626262", False),  # {"a": 1, "bb": ...}: value missing
        ("a2616101626262f6", True),  # {"a": 1, "bb": None}
        ("a2626262f6616101", False),  # longer key first
        ("a1f93e00f6", True),  # {1.5: None}: a float key, in half precision
        ("81fb3ff8000000000000", False),  # 1.5 as float64: canonical is float16
        ("81f93e00", True),  # [1.5] as float16
        ("a1180a01", False),  # key 10 in two bytes
        ("a10a01", True),
        ("c11a5f5e1000", False),  # a tag
        ("a201010102", False),  # {1: 1, 1: 2}: a duplicate key
        ("a2616101616102", False),  # {"a": 1, "a": 2}
        ("bf0101ff", False),  # an indefinite-length map
        ("9f01ff", False),  # an indefinite-length array
        ("5f4101ff", False),  # an indefinite-length byte string
        ("7f6161ff", False),  # an indefinite-length text string
    ],
)
def test_examples(encoded: str, accepted: bool) -> None:
    data = bytes.fromhex(encoded)
    assert _accepted(data) is accepted
    assert _canonical(data) is accepted


@given(
    st.dictionaries(
        st.one_of(st.integers(-30, 30), st.integers(-(2**33), 2**33)),
        st.one_of(st.binary(max_size=4), st.integers(), st.text(max_size=3)),
        max_size=8,
    )
)
def test_encode_response_is_canonical_whatever_the_key_order(response: dict[int, Any]) -> None:
    """Handlers may add keys in any order; the top level comes out sorted."""
    assert cbor.encode_response(response) == cbor2.dumps(response, canonical=True)
    assert cbor.encode_response(response, verify=True) == cbor2.dumps(response, canonical=True)
