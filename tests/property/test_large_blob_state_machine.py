"""A Hypothesis state machine over authenticatorLargeBlobs: fragmented writes (some corrupt,
some abandoned, some out of order and then resumed), reads at any offset, other commands,
power cycles and resets, checked against a model. Invariant: the committed array always
passes its integrity check and is exactly the last completely written valid array."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from authenticator import Authenticator, Command, CtapStatus, ManualClock, MemoryStore
from authenticator.commands import LargeBlobsKey as K
from authenticator.config import AuthenticatorConfig
from authenticator.large_blobs import EMPTY_ARRAY, FRAGMENT_OVERHEAD, STATE_KEY, integrity_ok

CONFIG = AuthenticatorConfig(max_msg_size=1200, max_serialized_large_blob_array=2048)
MAX_FRAGMENT = CONFIG.max_msg_size - FRAGMENT_OVERHEAD

entries = st.lists(
    st.fixed_dictionaries(
        {1: st.binary(max_size=400), 2: st.binary(min_size=12, max_size=12), 3: st.integers(0, 999)}
    ),
    max_size=4,
)


def serialize(array: list[Any]) -> bytes:
    data = cbor2.dumps(array, canonical=True)
    return data + hashlib.sha256(data).digest()[:16]


class LargeBlobMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.clock = ManualClock()
        self.auth = Authenticator(self.store, config=CONFIG, clock=self.clock, strict=True)
        self.committed = EMPTY_ARRAY
        self.writing: bytes | None = None  # the array being written
        self.written = 0  # bytes of it sent so far

    def call(self, params: dict[int, Any]) -> tuple[CtapStatus, Any]:
        message = bytes([Command.LARGE_BLOBS]) + cbor2.dumps(params, canonical=True)
        response = self.auth.call(message)
        body = cbor2.loads(response[1:]) if len(response) > 1 else None
        return CtapStatus(response[0]), body

    def send(self, data: bytes, offset: int, size: int, *, first: bool) -> CtapStatus:
        params: dict[int, Any] = {K.SET: data[offset : offset + size], K.OFFSET: offset}
        if first:
            params[K.LENGTH] = len(data)
        return self.call(params)[0]

    @rule(array=entries, corrupt=st.booleans(), size=st.integers(1, MAX_FRAGMENT))
    def begin_write(self, array: list[Any], corrupt: bool, size: int) -> None:
        data = serialize(array)
        if corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0x5A])
        if len(data) > CONFIG.max_serialized_large_blob_array:
            assert self.send(data, 0, size, first=True) is CtapStatus.LARGE_BLOB_STORAGE_FULL
            self.writing = None
            return
        size = min(size, len(data))
        status = self.send(data, 0, size, first=True)
        self.after_fragment(data, size, status, corrupt)

    def after_fragment(self, data: bytes, end: int, status: CtapStatus, corrupt: bool) -> None:
        if end < len(data):
            assert status is CtapStatus.OK
            self.writing, self.written = data, end
            return
        self.writing = None
        if corrupt:
            assert status is CtapStatus.INTEGRITY_FAILURE
        else:
            assert status is CtapStatus.OK
            self.committed = data

    @precondition(lambda self: self.writing is not None)
    @rule(size=st.integers(1, MAX_FRAGMENT))
    def next_fragment(self, size: int) -> None:
        assert self.writing is not None
        data = self.writing
        size = min(size, len(data) - self.written)
        status = self.send(data, self.written, size, first=False)
        self.after_fragment(data, self.written + size, status, not integrity_ok(data))

    @precondition(lambda self: self.writing is not None)
    @rule(skew=st.integers(-5, 5).filter(bool))
    def fragment_out_of_order(self, skew: int) -> None:
        assert self.writing is not None
        offset = max(1, self.written + skew)
        if offset == self.written:
            return
        status = self.send(self.writing, offset, 1, first=False)
        assert status is CtapStatus.INVALID_SEQ
        # The write in progress stays: step 5.d refuses before anything changes (§6.10.2).

    @rule(offset=st.integers(0, 2100), count=st.integers(0, MAX_FRAGMENT))
    def read(self, offset: int, count: int) -> None:
        status, body = self.call({K.GET: count, K.OFFSET: offset})
        if offset > len(self.committed):
            assert status is CtapStatus.INVALID_PARAMETER
        else:
            assert status is CtapStatus.OK
            assert body[1] == self.committed[offset : offset + count]

    @rule()
    def another_command(self) -> None:
        assert self.auth.call(bytes([Command.GET_INFO]))[0] == CtapStatus.OK
        self.writing = None

    @rule()
    def power_cycle(self) -> None:
        self.auth = Authenticator(self.store, config=CONFIG, clock=self.clock, strict=True)
        self.writing = None

    @rule()
    def reset(self) -> None:
        self.power_cycle()  # reset is allowed only just after power-up
        assert self.auth.call(bytes([Command.RESET]))[0] == CtapStatus.OK
        self.committed = EMPTY_ARRAY

    @invariant()
    def committed_array_is_valid_and_modelled(self) -> None:
        stored = self.store.get_state(STATE_KEY) or EMPTY_ARRAY
        assert integrity_ok(stored)
        assert stored == self.committed


TestLargeBlobMachine = LargeBlobMachine.TestCase
