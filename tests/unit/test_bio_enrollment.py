"""authenticatorBioEnrollment (CTAP 2.1 §6.7) on the bio profile, driven with raw CBOR and a
pinUvAuthToken issued through ``PinUvAuthToken`` (clientPIN itself is tested elsewhere):
scripted sample statuses, enumeration, names, removal, limits, permissions, and arbitrary
input never crashing the device."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator, Command, CtapStatus, ManualClock, MemoryStore, Presence
from authenticator.bio_enrollment import FINGERPRINT_SAMPLE, SampleStatus, sensor
from authenticator.commands import BioEnrollmentKey as K
from authenticator.commands import BioEnrollmentResponseKey as R
from authenticator.commands import BioEnrollmentSubCommand as Sub
from authenticator.config import BIO_SECURITY_KEY, SECURITY_KEY
from authenticator.pin_protocol import PinUvAuthProtocol, authenticate
from authenticator.pin_token import Permission
from authenticator.presence import NeedPresence, ScriptedPresence

FINGERPRINT = 1


class Bio:
    """A bio-profile device and a helper that signs bioEnrollment requests with a token."""

    def __init__(self, store: MemoryStore | None = None, clock: ManualClock | None = None) -> None:
        self.auth = Authenticator(
            store, config=BIO_SECURITY_KEY, clock=clock or ManualClock(), strict=True
        )
        self.presence = ScriptedPresence()
        self.grant(Permission.BE)

    def grant(self, permissions: Permission) -> None:
        self.auth.context.pin_token.begin_using(
            PinUvAuthProtocol.TWO, permissions, None, user_present=False
        )

    def call(
        self, sub: int, params: dict[int, Any] | None = None, *, auth: bool = True
    ) -> tuple[CtapStatus, dict[int, Any]]:
        request: dict[int, Any] = {K.MODALITY: FINGERPRINT, K.SUB_COMMAND: sub}
        if params is not None:
            request[K.SUB_COMMAND_PARAMS] = params
        if auth:
            message = bytes([FINGERPRINT, sub]) + (
                cbor2.dumps(params, canonical=True) if params is not None else b""
            )
            token = self.auth.context.pin_token.value
            request[K.PIN_UV_AUTH_PROTOCOL] = 2
            request[K.PIN_UV_AUTH_PARAM] = authenticate(PinUvAuthProtocol.TWO, token, message)
        message = bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps(request, canonical=True)
        response = self.auth.call(message, self.presence)
        body = cbor2.loads(response[1:]) if len(response) > 1 else {}
        return CtapStatus(response[0]), body

    def enroll(self) -> bytes:
        status, body = self.call(Sub.ENROLL_BEGIN)
        assert status is CtapStatus.OK
        template_id: bytes = body[R.TEMPLATE_ID]
        while body[R.REMAINING_SAMPLES]:
            status, body = self.call(Sub.ENROLL_CAPTURE_NEXT_SAMPLE, {1: template_id})
            assert status is CtapStatus.OK
        return template_id

    def enrollments(self) -> dict[bytes, str]:
        status, body = self.call(Sub.ENUMERATE_ENROLLMENTS)
        if status is CtapStatus.INVALID_OPTION:
            return {}
        assert status is CtapStatus.OK
        return {info[1]: info[2] for info in body[R.TEMPLATE_INFOS]}

    def info(self) -> dict[int, Any]:
        response = self.auth.call(bytes([Command.GET_INFO]))
        decoded: dict[int, Any] = cbor2.loads(response[1:])
        return decoded


def test_sensor_info_and_modality_need_no_token() -> None:
    bio = Bio()
    status, body = bio.call(Sub.GET_FINGERPRINT_SENSOR_INFO, auth=False)
    assert status is CtapStatus.OK
    assert body == {
        R.MODALITY: FINGERPRINT,
        R.FINGERPRINT_KIND: 1,
        R.MAX_CAPTURE_SAMPLES_REQUIRED_FOR_ENROLL: BIO_SECURITY_KEY.bio_samples_per_enrollment,
        R.MAX_TEMPLATE_FRIENDLY_NAME: BIO_SECURITY_KEY.bio_max_template_friendly_name,
    }
    response = bio.auth.call(bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps({K.GET_MODALITY: True}))
    assert cbor2.loads(response[1:]) == {R.MODALITY: FINGERPRINT}


def test_enrollment_counts_only_good_samples_and_reports_each_status() -> None:
    bio = Bio()
    scripted = [SampleStatus.TOO_FAST, SampleStatus.GOOD, SampleStatus.POOR_QUALITY]
    sensor(bio.auth.context).push(*scripted)
    status, body = bio.call(Sub.ENROLL_BEGIN)
    assert status is CtapStatus.OK
    template_id = body[R.TEMPLATE_ID]
    seen = [(body[R.LAST_ENROLL_SAMPLE_STATUS], body[R.REMAINING_SAMPLES])]
    while body[R.REMAINING_SAMPLES]:
        status, body = bio.call(Sub.ENROLL_CAPTURE_NEXT_SAMPLE, {1: template_id})
        assert status is CtapStatus.OK
        seen.append((body[R.LAST_ENROLL_SAMPLE_STATUS], body[R.REMAINING_SAMPLES]))
    samples = BIO_SECURITY_KEY.bio_samples_per_enrollment
    assert seen[:3] == [
        (SampleStatus.TOO_FAST, samples),
        (SampleStatus.GOOD, samples - 1),
        (SampleStatus.POOR_QUALITY, samples - 1),
    ]
    assert len(seen) == samples + 2
    assert all(request.reason == FINGERPRINT_SAMPLE for request in bio.presence.requests)
    assert bio.enrollments() == {template_id: ""}


def test_enrolling_a_finger_turns_on_bio_enroll_and_built_in_uv() -> None:
    bio = Bio()
    assert bio.info()[0x04]["bioEnroll"] is False
    bio.enroll()
    assert bio.info()[0x04]["bioEnroll"] is True
    assert bio.info()[0x04].get("uv") is True


def test_names_removal_and_persistence() -> None:
    store, clock = MemoryStore(), ManualClock()
    bio = Bio(store, clock)
    first, second = bio.enroll(), bio.enroll()
    assert first != second
    assert bio.call(Sub.SET_FRIENDLY_NAME, {1: first, 2: "left thumb"})[0] is CtapStatus.OK
    long_name = "é" * 40  # 80 bytes: cut at a character boundary to 64
    assert bio.call(Sub.SET_FRIENDLY_NAME, {1: second, 2: long_name})[0] is CtapStatus.OK
    rebooted = Bio(store, clock)
    assert rebooted.enrollments() == {first: "left thumb", second: "é" * 32}
    assert rebooted.call(Sub.REMOVE_ENROLLMENT, {1: first})[0] is CtapStatus.OK
    assert rebooted.enrollments() == {second: "é" * 32}
    assert rebooted.call(Sub.REMOVE_ENROLLMENT, {1: first})[0] is CtapStatus.INVALID_OPTION
    assert rebooted.call(Sub.SET_FRIENDLY_NAME, {1: first, 2: "x"})[0] is (
        CtapStatus.INVALID_OPTION
    )


def test_reset_wipes_enrollments() -> None:
    bio = Bio()
    bio.enroll()
    assert bio.auth.call(bytes([Command.RESET]))[0] == CtapStatus.OK
    bio.grant(Permission.BE)
    assert bio.enrollments() == {}
    assert bio.info()[0x04]["bioEnroll"] is False


def test_the_template_database_has_a_limit() -> None:
    bio = Bio()
    for _ in range(BIO_SECURITY_KEY.bio_max_templates):
        bio.enroll()
    assert bio.call(Sub.ENROLL_BEGIN)[0] is CtapStatus.FP_DATABASE_FULL
    assert len(bio.enrollments()) == BIO_SECURITY_KEY.bio_max_templates


def test_cancel_and_interruptions_abandon_the_enrollment() -> None:
    bio = Bio()
    status, body = bio.call(Sub.ENROLL_BEGIN)
    assert status is CtapStatus.OK
    template_id = body[R.TEMPLATE_ID]
    assert bio.call(Sub.CANCEL_CURRENT_ENROLLMENT, auth=False)[0] is CtapStatus.OK
    assert bio.call(Sub.ENROLL_CAPTURE_NEXT_SAMPLE, {1: template_id})[0] is (
        CtapStatus.INVALID_PARAMETER
    )
    status, body = bio.call(Sub.ENROLL_BEGIN)
    assert status is CtapStatus.OK
    assert bio.auth.call(bytes([Command.GET_INFO]))[0] == CtapStatus.OK  # another command
    assert bio.call(Sub.ENROLL_CAPTURE_NEXT_SAMPLE, {1: body[R.TEMPLATE_ID]})[0] is (
        CtapStatus.INVALID_PARAMETER
    )
    bio.presence.push(Presence.TIMED_OUT)
    assert bio.call(Sub.ENROLL_BEGIN)[0] is CtapStatus.USER_ACTION_TIMEOUT
    assert bio.enrollments() == {}


def test_the_wrong_template_id_is_refused() -> None:
    bio = Bio()
    status, body = bio.call(Sub.ENROLL_BEGIN)
    assert status is CtapStatus.OK
    wrong = bytes(a ^ 0xFF for a in body[R.TEMPLATE_ID])
    assert bio.call(Sub.ENROLL_CAPTURE_NEXT_SAMPLE, {1: wrong})[0] is CtapStatus.INVALID_PARAMETER


@pytest.mark.parametrize("sub", [Sub.ENROLL_BEGIN, Sub.ENUMERATE_ENROLLMENTS])
def test_authenticated_subcommands_need_the_be_permission(sub: Sub) -> None:
    bio = Bio()
    assert bio.call(sub, auth=False)[0] is CtapStatus.PUAT_REQUIRED
    bio.grant(Permission.MC | Permission.GA | Permission.LBW)
    assert bio.call(sub)[0] is CtapStatus.PIN_AUTH_INVALID


def test_a_wrong_mac_is_pin_auth_invalid() -> None:
    bio = Bio()
    request = {
        K.MODALITY: FINGERPRINT,
        K.SUB_COMMAND: Sub.ENUMERATE_ENROLLMENTS,
        K.PIN_UV_AUTH_PROTOCOL: 2,
        K.PIN_UV_AUTH_PARAM: bytes(32),
    }
    response = bio.auth.call(bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps(request))
    assert response == bytes([CtapStatus.PIN_AUTH_INVALID])


@pytest.mark.parametrize(
    ("request_map", "status"),
    [
        ({K.SUB_COMMAND: Sub.ENROLL_BEGIN}, CtapStatus.MISSING_PARAMETER),
        ({K.MODALITY: 2, K.SUB_COMMAND: Sub.ENROLL_BEGIN}, CtapStatus.INVALID_PARAMETER),
        ({K.MODALITY: FINGERPRINT, K.SUB_COMMAND: 0x42}, CtapStatus.INVALID_SUBCOMMAND),
        ({K.MODALITY: "1", K.SUB_COMMAND: 1}, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ],
)
def test_malformed_requests(request_map: dict[int, Any], status: CtapStatus) -> None:
    bio = Bio()
    response = bio.auth.call(bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps(request_map))
    assert response == bytes([status])


def test_the_prototype_command_is_the_same_command() -> None:
    bio = Bio()
    message = cbor2.dumps({K.GET_MODALITY: True})
    for command in (Command.BIO_ENROLLMENT, Command.BIO_ENROLLMENT_PRE):
        assert bio.auth.call(bytes([command]) + message)[0] == CtapStatus.OK


def test_a_profile_without_bio_has_no_command() -> None:
    auth = Authenticator(config=SECURITY_KEY, strict=True)
    message = bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps({K.GET_MODALITY: True})
    assert auth.call(message) == bytes([CtapStatus.INVALID_COMMAND])


# -- arbitrary input ------------------------------------------------------------------------

fuzz_bio = Bio()
cbor_leaves = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=10),
    st.booleans(),
    st.none(),
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-3, 10), st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=15,
)


def _finish(auth: Authenticator, message: bytes, outcome: Presence) -> bytes:
    step = auth.start(message)
    while isinstance(step, NeedPresence):
        step = auth.resume(outcome)
    return step.response


def _still_serving(auth: Authenticator) -> None:
    info = auth.call(bytes([Command.GET_INFO]))
    assert info[0] == CtapStatus.OK
    assert isinstance(cbor2.loads(info[1:]), dict)


@given(
    command=st.sampled_from([Command.BIO_ENROLLMENT, Command.BIO_ENROLLMENT_PRE]),
    body=st.binary(max_size=200),
    outcome=st.sampled_from(list(Presence)),
)
def test_arbitrary_bytes_give_a_status(command: int, body: bytes, outcome: Presence) -> None:
    response = _finish(fuzz_bio.auth, bytes([command]) + body, outcome)
    status = CtapStatus(response[0])
    assert status is CtapStatus.OK or len(response) == 1
    _still_serving(fuzz_bio.auth)


@given(
    params=st.dictionaries(st.integers(0, 8), cbor_values, max_size=7),
    sub=st.sampled_from(list(Sub)),
    outcome=st.sampled_from(list(Presence)),
)
def test_arbitrary_cbor_gives_a_status(params: dict[int, Any], sub: Sub, outcome: Presence) -> None:
    params.setdefault(K.MODALITY, FINGERPRINT)
    params.setdefault(K.SUB_COMMAND, int(sub))
    message = bytes([Command.BIO_ENROLLMENT]) + cbor2.dumps(params, canonical=True)
    response = _finish(fuzz_bio.auth, message, outcome)
    status = CtapStatus(response[0])
    assert status is CtapStatus.OK or len(response) == 1
    _still_serving(fuzz_bio.auth)
