"""A Hypothesis state machine over PIN/UV, credential management and large blobs, against a
model: set/change PIN with right and wrong PINs, tokens with permissions and RP IDs, the
token timers (advance the clock), CTAP 2.2's persistent pcmr token (no timers, survives
power cycles, leaves the ordinary token alone, dies with a PIN change or a reset),
registrations with and without tokens, enumerations and deletions with either token,
large-blob writes and reads, power cycles and resets.

Invariants: retries change only as the spec says (a wrong PIN costs one, only a correct PIN
restores them), three consecutive wrong PINs block until a power cycle, zero retries block
until a reset; enumerations always match the modelled credential set; the committed
large-blob array always passes its integrity check and is the last one written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cbor2
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from authenticator import SECURITY_KEY, Authenticator, Command, CtapStatus, ManualClock
from authenticator import MemoryStore as Store
from authenticator.commands import CredentialManagementResponseKey as Out
from authenticator.commands import CredentialManagementSubCommand as Cm
from authenticator.commands import LargeBlobsKey
from authenticator.large_blobs import EMPTY_ARRAY, STATE_KEY, integrity_ok
from authenticator.large_blobs import MESSAGE_PREFIX as LARGE_BLOB_PREFIX
from authenticator.pin_token import (
    INITIAL_USAGE_TIME_LIMIT,
    MAX_USAGE_TIME_PERIOD,
    Permission,
)
from tests.pin_platform import PinPlatform, call

MAX_RETRIES = SECURITY_KEY.pin_retries
PINS = ["1234", "5678", "abcd", "12"]  # "12" is below minPINLength
RPS = ["a.example", "b.example"]
USERS = [b"u1", b"u2", b"u3"]
GRANTS: list[tuple[Permission, str | None]] = [
    (Permission.MC | Permission.GA, "a.example"),
    (Permission.MC | Permission.GA, None),
    (Permission.MC | Permission.LBW, "b.example"),
    (Permission.CM, None),
    (Permission.PCMR, None),
    (Permission.LBW, None),
    (Permission.CM | Permission.LBW, None),
]


def valid(pin: str) -> bool:
    return len(pin) >= SECURITY_KEY.min_pin_length


def rp_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


@dataclass
class TokenModel:
    value: bytes
    permissions: Permission
    rp_id: str | None
    issued_at: float
    used: bool = False
    user_verified: bool = True
    stopped: bool = False

    def in_use(self, now: float) -> bool:
        age = now - self.issued_at
        if self.stopped or age > MAX_USAGE_TIME_PERIOD:
            return False
        return self.used or age <= INITIAL_USAGE_TIME_LIMIT

    def admits(self, now: float, permission: Permission, rp_id: str | None) -> bool:
        """``verify`` then ``require_permission``; marks the token used when its MAC is."""
        if not self.in_use(now):
            self.stopped = True
            return False
        self.used = True
        if not self.permissions & permission:
            return False
        return self.rp_id is None or rp_id is None or self.rp_id == rp_id


class PinMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = Store()
        self.clock = ManualClock()
        self.power_up()
        self.pin: str | None = None
        self.retries = MAX_RETRIES
        self.credentials: dict[tuple[str, bytes], bool] = {}
        self.blob = EMPTY_ARRAY
        self.blob_count = 0
        self.persistent: bytes | None = None  # the pcmr token: device state, not runtime

    def power_up(self) -> None:
        self.auth = Authenticator(self.store, clock=self.clock, strict=True)
        self.platform = PinPlatform(self.auth, 2)
        self.mismatches = 0
        self.token: TokenModel | None = None

    def now(self) -> float:
        return self.clock.now()

    def pin_check(self, guess: str) -> CtapStatus | None:
        """The PIN comparison (§6.5.5.7.1 steps 5-10): the status of a failure, else None."""
        if self.pin is None:
            return CtapStatus.PIN_NOT_SET
        if self.retries == 0:
            return CtapStatus.PIN_BLOCKED
        if self.mismatches >= 3:
            return CtapStatus.PIN_AUTH_BLOCKED
        self.retries -= 1
        if guess != self.pin:
            self.mismatches += 1
            if self.retries == 0:
                return CtapStatus.PIN_BLOCKED
            if self.mismatches >= 3:
                return CtapStatus.PIN_AUTH_BLOCKED
            return CtapStatus.PIN_INVALID
        self.mismatches = 0
        self.retries = MAX_RETRIES
        return None

    # -- PIN ------------------------------------------------------------------------------

    @rule(pin=st.sampled_from(PINS))
    def set_pin(self, pin: str) -> None:
        status = self.platform.set_pin(pin)
        if self.pin is not None:
            assert status is CtapStatus.PIN_AUTH_INVALID
        elif not valid(pin):
            assert status is CtapStatus.PIN_POLICY_VIOLATION
        else:
            assert status is CtapStatus.OK
            self.pin, self.retries = pin, MAX_RETRIES

    @precondition(lambda self: self.pin is not None)
    @rule(old=st.sampled_from(PINS), new=st.sampled_from(PINS))
    def change_pin(self, old: str, new: str) -> None:
        status = self.platform.change_pin(old, new)
        if self.retries == 0:
            assert status is CtapStatus.PIN_BLOCKED
            return
        expected = self.pin_check(old)
        if expected is None and not valid(new):
            expected = CtapStatus.PIN_POLICY_VIOLATION
        assert status is (expected or CtapStatus.OK)
        if expected is None:
            self.pin = new
            self.token = None  # resetPinUvAuthToken
            self.persistent = None  # resetPersistentPinUvAuthToken

    @rule(guess=st.sampled_from(PINS), grant=st.sampled_from(GRANTS))
    def get_token(self, guess: str, grant: tuple[Permission, str | None]) -> None:
        permissions, rp_id = grant
        token = self.platform.token(guess, permissions, rp_id)
        expected = self.pin_check(guess)
        if expected is not None:
            assert token is expected
            return
        assert isinstance(token, bytes)
        if permissions == Permission.PCMR:
            # CTAP 2.2: the persistent token, the same one until a reset; the ordinary
            # token is not replaced.
            assert token == (self.persistent or token)
            assert self.token is None or token != self.token.value
            self.persistent = token
            return
        self.token = TokenModel(token, permissions, rp_id, self.now())

    @rule(seconds=st.sampled_from([1.0, 20.0, 31.0, 300.0, 601.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def power_cycle(self) -> None:
        self.power_up()

    @rule()
    def reset(self) -> None:
        self.power_up()  # reset is allowed only just after power-up
        assert call(self.auth, Command.RESET).status is CtapStatus.OK
        self.pin, self.retries = None, MAX_RETRIES
        self.credentials.clear()
        self.blob = EMPTY_ARRAY
        self.persistent = None

    # -- registrations and credential management ------------------------------------------

    @rule(rp_id=st.sampled_from(RPS), user_id=st.sampled_from(USERS), rk=st.booleans())
    def make_credential(self, rp_id: str, user_id: bytes, rk: bool) -> None:
        token = self.token.value if self.token is not None and self.pin is not None else None
        reply = self.platform.make_credential(token, rp_id, user_id, rk=rk)
        if token is None:
            # Without a PIN nothing is required; with one, makeCredUvNotRqd covers only
            # non-discoverable credentials.
            expected = CtapStatus.PUAT_REQUIRED if self.pin is not None and rk else CtapStatus.OK
        else:
            assert self.token is not None
            admitted = self.token.admits(self.now(), Permission.MC, rp_id)
            if admitted and self.token.user_verified:
                expected = CtapStatus.OK
                if self.token.rp_id is None:
                    self.token.rp_id = rp_id  # bound on first use
                self.token.user_verified = False
                self.token.permissions &= Permission.LBW
            else:
                expected = CtapStatus.PIN_AUTH_INVALID
        assert reply.status is expected
        if expected is CtapStatus.OK and rk:
            self.credentials[(rp_id, user_id)] = True

    def cm_token(self, permission: Permission) -> bytes | None:
        """The token's value when it passes a credentialManagement check, else None."""
        if self.token is None or self.pin is None:
            return None
        token = self.token
        return token.value if token.admits(self.now(), permission, None) else None

    @rule(persistent=st.booleans())
    def enumerate(self, persistent: bool) -> None:
        if persistent:
            token = self.persistent or bytes(32)
        else:
            token = self.token.value if self.token is not None else bytes(32)
        mac = self.platform.authenticate(token, bytes([Cm.ENUMERATE_RPS_BEGIN]))
        request = {1: Cm.ENUMERATE_RPS_BEGIN, 3: 2, 4: mac}
        reply = call(self.auth, Command.CREDENTIAL_MANAGEMENT, request)
        # The persistent token has no timers and no RP ID; the ordinary one needs cm.
        admitted = self.persistent if persistent else self.cm_token(Permission.CM)
        if admitted is None:
            # Credential management always needs a token; without a PIN there is none.
            assert reply.status is CtapStatus.PIN_AUTH_INVALID
            return
        if not self.credentials:
            assert reply.status is CtapStatus.NO_CREDENTIALS
            return
        rps = [reply.body]
        next_rp = {1: Cm.ENUMERATE_RPS_GET_NEXT_RP}
        for _ in range(reply.body[Out.TOTAL_RPS] - 1):
            rps.append(call(self.auth, Command.CREDENTIAL_MANAGEMENT, next_rp).body)
        assert {rp[Out.RP]["id"] for rp in rps} == {rp_id for rp_id, _ in self.credentials}
        for rp_id in {rp_id for rp_id, _ in self.credentials}:
            params = {1: rp_hash(rp_id)}
            message = bytes([Cm.ENUMERATE_CREDENTIALS_BEGIN]) + cbor2.dumps(params)
            request = {
                1: Cm.ENUMERATE_CREDENTIALS_BEGIN,
                2: params,
                3: 2,
                4: self.platform.authenticate(admitted, message),
            }
            first = call(self.auth, Command.CREDENTIAL_MANAGEMENT, request)
            assert first.status is CtapStatus.OK
            users = [first.body[Out.USER]["id"]]
            for _ in range(first.body[Out.TOTAL_CREDENTIALS] - 1):
                next_sub = {1: Cm.ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL}
                users.append(
                    call(self.auth, Command.CREDENTIAL_MANAGEMENT, next_sub).body[Out.USER]["id"]
                )
            assert sorted(users) == sorted(u for r, u in self.credentials if r == rp_id)

    @precondition(lambda self: bool(self.credentials))
    @rule(data=st.data(), persistent=st.booleans())
    def delete(self, data: st.DataObject, persistent: bool) -> None:
        rp_id, user_id = data.draw(st.sampled_from(sorted(self.credentials)))
        stored = self.store.discoverable_for_user(rp_id, user_id)
        assert len(stored) == 1
        params = {2: {"id": stored[0].credential_id, "type": "public-key"}}
        if persistent:
            token = self.persistent or bytes(32)
        else:
            token = self.token.value if self.token is not None else bytes(32)
        message = bytes([Cm.DELETE_CREDENTIAL]) + cbor2.dumps(params)
        request = {1: Cm.DELETE_CREDENTIAL, 2: params, 3: 2}
        request[4] = self.platform.authenticate(token, message)
        reply = call(self.auth, Command.CREDENTIAL_MANAGEMENT, request)
        if persistent or self.cm_token(Permission.CM) is None:
            # The persistent token is read-only: deleteCredential never accepts it.
            assert reply.status is CtapStatus.PIN_AUTH_INVALID
        else:
            assert reply.status is CtapStatus.OK
            del self.credentials[(rp_id, user_id)]

    # -- large blobs ----------------------------------------------------------------------

    @rule(size=st.integers(0, 300))
    def write_large_blob(self, size: int) -> None:
        self.blob_count += 1
        data = cbor2.dumps([{1: bytes([self.blob_count % 256]) * size, 2: b"n" * 12, 3: size}])
        array = data + hashlib.sha256(data).digest()[:16]
        k = LargeBlobsKey
        request: dict[int, Any] = {k.SET: array, k.OFFSET: 0, k.LENGTH: len(array)}
        if self.pin is not None:
            token = self.token.value if self.token is not None else bytes(32)
            message = LARGE_BLOB_PREFIX + bytes(4) + hashlib.sha256(array).digest()
            request[k.PIN_UV_AUTH_PARAM] = self.platform.authenticate(token, message)
            request[k.PIN_UV_AUTH_PROTOCOL] = 2
        status = call(self.auth, Command.LARGE_BLOBS, request).status
        if self.pin is not None and self.cm_token(Permission.LBW) is None:
            assert status is CtapStatus.PIN_AUTH_INVALID
        else:
            assert status is CtapStatus.OK
            self.blob = array

    @rule()
    def read_large_blob(self) -> None:
        reply = call(self.auth, Command.LARGE_BLOBS, {LargeBlobsKey.GET: 1000, 3: 0})
        assert reply.body[1] == self.blob

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def retries_and_block_match_the_model(self) -> None:
        assert self.platform.retries() == (self.retries, self.mismatches >= 3)

    @invariant()
    def store_matches_the_model(self) -> None:
        stored = {(c.rp_id, c.user_id) for c in self.store.credentials() if c.discoverable}
        assert stored == set(self.credentials)
        blob = self.store.get_state(STATE_KEY) or EMPTY_ARRAY
        assert integrity_ok(blob) and blob == self.blob


PinMachine.TestCase.settings = settings(
    PinMachine.TestCase.settings, max_examples=400, stateful_step_count=40, deadline=None
)
TestPinMachine = PinMachine.TestCase
