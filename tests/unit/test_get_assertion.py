"""authenticatorGetAssertion / GetNextAssertion: options, lookup, timer, pending state."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cbor2
import pytest

from authenticator import (
    SECURITY_KEY,
    AuthDataFlag,
    Authenticator,
    Command,
    CounterMode,
    CtapStatus,
    Done,
    ManualClock,
    NeedPresence,
    Presence,
    ScriptedPresence,
)

CDH = b"\x22" * 32


def register(
    auth: Authenticator, user_id: bytes, rk: bool = True, rp: str = "example.com"
) -> bytes:
    params = {
        1: CDH,
        2: {"id": rp},
        3: {"id": user_id, "name": user_id.decode(), "displayName": "D" + user_id.decode()},
        4: [{"type": "public-key", "alg": -7}],
        7: {"rk": rk},
    }
    response = auth.call(bytes([Command.MAKE_CREDENTIAL]) + cbor2.dumps(params, canonical=True))
    assert response[0] == 0
    auth_data = cbor2.loads(response[1:])[2]
    return bytes(auth_data[55 : 55 + int.from_bytes(auth_data[53:55], "big")])


def assertion(auth: Authenticator, presence: Any = None, **params: Any) -> tuple[CtapStatus, Any]:
    body = {1: "example.com", 2: CDH}
    for key, value in params.items():
        body[int(key[1:])] = value
    message = bytes([Command.GET_ASSERTION]) + cbor2.dumps(body, canonical=True)
    response = auth.call(message, presence) if presence else auth.call(message)
    return CtapStatus(response[0]), cbor2.loads(response[1:]) if len(response) > 1 else None


def next_assertion(auth: Authenticator) -> tuple[CtapStatus, Any]:
    response = auth.call(bytes([Command.GET_NEXT_ASSERTION]))
    return CtapStatus(response[0]), cbor2.loads(response[1:]) if len(response) > 1 else None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def auth(clock: ManualClock) -> Authenticator:
    return Authenticator(strict=True, attestation="none", clock=clock)


def test_no_credentials(auth: Authenticator) -> None:
    presence = ScriptedPresence()
    assert assertion(auth, presence)[0] is CtapStatus.NO_CREDENTIALS
    assert presence.requests == []


def test_rk_option_is_unsupported(auth: Authenticator) -> None:
    register(auth, b"a")
    assert assertion(auth, k5={"rk": True})[0] is CtapStatus.UNSUPPORTED_OPTION


def test_silent_assertion_has_no_up_flag_and_asks_nobody(auth: Authenticator) -> None:
    credential_id = register(auth, b"a", rk=False)
    presence = ScriptedPresence()
    status, response = assertion(
        auth, presence, k3=[{"type": "public-key", "id": credential_id}], k5={"up": False}
    )
    assert status is CtapStatus.OK
    assert presence.requests == []
    assert not response[2][32] & AuthDataFlag.UP


def test_get_next_assertion_walks_newest_first_then_ends(auth: Authenticator) -> None:
    for name in (b"a", b"b", b"c"):
        register(auth, name)
    status, first = assertion(auth)
    assert status is CtapStatus.OK and first[5] == 3
    users = [first[4]["id"]]
    for _ in range(2):
        status, nxt = next_assertion(auth)
        assert status is CtapStatus.OK and 5 not in nxt
        users.append(nxt[4]["id"])
    assert users == [b"c", b"b", b"a"]
    assert "name" not in first[4]  # no UV: no identifying details (CTAP 2.1 §6.2.2)
    assert next_assertion(auth)[0] is CtapStatus.NOT_ALLOWED


def test_get_next_assertion_timer(auth: Authenticator, clock: ManualClock) -> None:
    register(auth, b"a")
    register(auth, b"b")
    assertion(auth)
    clock.advance(29)
    register(auth, b"c")  # any other command clears the pending state
    assert next_assertion(auth)[0] is CtapStatus.NOT_ALLOWED
    assertion(auth)
    clock.advance(30.5)
    assert next_assertion(auth)[0] is CtapStatus.NOT_ALLOWED


def test_allow_list_returns_one_credential_and_ignores_foreign_ids(auth: Authenticator) -> None:
    mine = register(auth, b"a", rk=False)
    other_rp = register(auth, b"b", rk=False, rp="other.example")
    allow = [
        {"type": "public-key", "id": other_rp},
        {"type": "public-key", "id": b"\x01" * 70},
        {"type": "public-key", "id": mine},
    ]
    status, response = assertion(auth, k3=allow)
    assert status is CtapStatus.OK
    assert response[1]["id"] == mine and 5 not in response
    assert 4 not in response  # a non-discoverable credential has no user entity


def test_counters_per_credential_global_and_zero() -> None:
    counts: dict[CounterMode, list[int]] = {}
    for mode in CounterMode:
        auth = Authenticator(
            config=replace(SECURITY_KEY, counter=mode), strict=True, attestation="none"
        )
        a = register(auth, b"a", rk=False)
        b = register(auth, b"b", rk=False)
        seen = []
        for credential_id in (a, a, b, a):
            _, response = assertion(auth, k3=[{"type": "public-key", "id": credential_id}])
            seen.append(int.from_bytes(response[2][33:37], "big"))
        counts[mode] = seen
    assert counts[CounterMode.PER_CREDENTIAL] == [1, 2, 1, 3]
    assert counts[CounterMode.ZERO] == [0, 0, 0, 0]
    glob = counts[CounterMode.GLOBAL]
    assert glob == sorted(set(glob))  # strictly increasing across credentials


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
    ],
)
def test_presence_refused(auth: Authenticator, outcome: Presence, status: CtapStatus) -> None:
    register(auth, b"a")
    assert assertion(auth, ScriptedPresence([outcome]))[0] is status
    assert assertion(auth)[0] is CtapStatus.OK


def test_reset_needs_touch_within_window_and_revokes_everything(
    auth: Authenticator, clock: ManualClock
) -> None:
    wrapped = register(auth, b"a", rk=False)
    register(auth, b"b")
    root = auth.attestation_root_pem()
    assert auth.call(bytes([Command.RESET]), ScriptedPresence([Presence.DENIED])) == bytes(
        [CtapStatus.OPERATION_DENIED]
    )
    assert auth.call(bytes([Command.RESET])) == bytes([CtapStatus.OK])
    assert assertion(auth)[0] is CtapStatus.NO_CREDENTIALS
    assert (
        assertion(auth, k3=[{"type": "public-key", "id": wrapped}])[0] is CtapStatus.NO_CREDENTIALS
    )
    assert auth.attestation_root_pem() == root  # the factory identity survives
    clock.advance(11)
    assert auth.call(bytes([Command.RESET])) == bytes([CtapStatus.NOT_ALLOWED])


def test_selection(auth: Authenticator) -> None:
    assert auth.call(bytes([Command.SELECTION])) == b"\x00"
    assert auth.call(bytes([Command.SELECTION]), ScriptedPresence([Presence.DENIED])) == bytes(
        [CtapStatus.OPERATION_DENIED]
    )


def test_cancel_while_waiting(auth: Authenticator) -> None:
    register(auth, b"a")
    step = auth.start(bytes([Command.GET_ASSERTION]) + cbor2.dumps({1: "example.com", 2: CDH}))
    assert isinstance(step, NeedPresence)
    done = auth.cancel()
    assert isinstance(done, Done)
    assert done.response == bytes([CtapStatus.KEEPALIVE_CANCEL])
    assert auth.cancel() is None


# -- built-in UV failing inside getAssertion (CTAP 2.1 §6.2.2 step 6.2.3) -------------------


def _platform(**changes: Any) -> Authenticator:
    from authenticator import PLATFORM

    auth = Authenticator(config=replace(PLATFORM, **changes), strict=True)
    body = {
        1: CDH,
        2: {"id": "example.com"},
        3: {"id": b"u1", "name": "u1"},
        4: [{"type": "public-key", "alg": -7}],
        7: {"uv": True},
    }
    response = auth.call(bytes([Command.MAKE_CREDENTIAL]) + cbor2.dumps(body, canonical=True))
    assert response[0] == CtapStatus.OK
    return auth


def _uv_ga(auth: Authenticator, *outcomes: Presence) -> tuple[CtapStatus, ScriptedPresence]:
    presence = ScriptedPresence(outcomes)
    return assertion(auth, presence, k5={"uv": True})[0], presence


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.UV_FAILED, CtapStatus.OPERATION_DENIED),
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
        (Presence.CANCELLED, CtapStatus.KEEPALIVE_CANCEL),
    ],
)
def test_built_in_uv_failure_statuses(outcome: Presence, status: CtapStatus) -> None:
    auth = _platform()
    assert _uv_ga(auth, outcome)[0] is status
    assert _uv_ga(auth)[0] is CtapStatus.OK  # a match afterwards signs


def test_built_in_uv_exhausted_is_pin_blocked_without_asking() -> None:
    auth = _platform()
    retries = auth.config.uv_retries
    for _ in range(retries - 1):
        assert _uv_ga(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED
    assert _uv_ga(auth, Presence.UV_FAILED)[0] is CtapStatus.PIN_BLOCKED
    status, presence = _uv_ga(auth)
    assert status is CtapStatus.PIN_BLOCKED
    assert presence.requests == []


def test_built_in_uv_failure_with_a_usable_pin_is_puat_required() -> None:
    from fido2.ctap2 import ClientPin, Ctap2

    from transports.inprocess import InProcessDevice

    auth = _platform(client_pin=True)
    assert _uv_ga(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED  # no PIN set yet
    ClientPin(Ctap2(InProcessDevice(auth))).set_pin("4321")
    assert _uv_ga(auth, Presence.UV_FAILED)[0] is CtapStatus.PUAT_REQUIRED
    assert _uv_ga(auth, Presence.TIMED_OUT)[0] is CtapStatus.USER_ACTION_TIMEOUT
    for _ in range(auth.config.uv_retries):
        _uv_ga(auth, Presence.UV_FAILED)
    assert _uv_ga(auth)[0] is CtapStatus.PUAT_REQUIRED  # blocked: the PIN is the way

    # noMcGaPermissionsWithClientPin: the PIN cannot grant ga, so no PUAT_REQUIRED.
    auth = _platform(client_pin=True, no_mc_ga_permissions_with_client_pin=True)
    ClientPin(Ctap2(InProcessDevice(auth))).set_pin("4321")
    assert _uv_ga(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED


# -- alwaysUv and the silent assertion (CTAP 2.1 §6.2.2 step 5) -----------------------------


def test_always_uv_does_not_apply_to_a_silent_assertion() -> None:
    from authenticator.user_verification import set_always_uv

    auth = Authenticator(strict=True)
    credential_id = register(auth, b"u1", rk=False)
    allow = [{"type": "public-key", "id": credential_id}]
    set_always_uv(auth.context, True)
    presence = ScriptedPresence()
    # up=false: a pre-flight probe goes on as without alwaysUv, with neither UP nor UV.
    status, body = assertion(auth, presence, k3=allow, k5={"up": False})
    assert status is CtapStatus.OK
    assert body[2][32] & (AuthDataFlag.UP | AuthDataFlag.UV) == 0
    assert presence.requests == []
    assert assertion(auth, presence, k5={"up": False})[0] is CtapStatus.NO_CREDENTIALS
    # "up" true, explicit or by default: alwaysUv asks for a pinUvAuthToken.
    assert assertion(auth, presence, k3=allow)[0] is CtapStatus.PUAT_REQUIRED
    assert assertion(auth, presence, k3=allow, k5={"up": True})[0] is CtapStatus.PUAT_REQUIRED
    assert presence.requests == []
