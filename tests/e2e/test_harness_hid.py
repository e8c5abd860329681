"""The scripted user driving a HID transport: ``WebAuthnClient`` over
``InProcessDevice(hid=True)``, so each ceremony crosses python-fido2's CTAPHID host and our
framer as 64-byte reports on a ManualClock. Scripted delays and time-outs show the keepalive
cadence of a real key (UPNEEDED every 100 ms, CTAP 2.1 §11.2.9.2.1), cancels and aborts are
CTAPHID_CANCEL, and py_webauthn verifies what succeeds."""

from __future__ import annotations

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import Authenticator, CtapStatus, ManualClock
from tests.unit.test_hid_cadence import commands_to_device, keepalive_times
from transports.ctaphid.constants import KEEPALIVE_INTERVAL, HidCommand
from transports.inprocess import InProcessDevice
from transports.webauthn import (
    AbortError,
    NotAllowedError,
    WebAuthnClient,
    abort,
    approve,
    cancel,
    deny,
    time_out,
    wait,
)

ORIGIN = "https://example.com"
RP_ID = "example.com"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def device(clock: ManualClock) -> InProcessDevice:
    return InProcessDevice(Authenticator(clock=clock, strict=True), hid=True)


@pytest.fixture
def client(device: InProcessDevice) -> WebAuthnClient:
    return WebAuthnClient(ORIGIN, device)


def register(client: WebAuthnClient) -> bytes:
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="Example",
        user_name="alice",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED
        ),
    )
    registered = verify_registration_response(
        credential=client.create(options_to_json(options)),
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    return registered.credential_public_key


def login_options(**kwargs: object) -> str:
    return options_to_json(generate_authentication_options(rp_id=RP_ID, **kwargs))  # type: ignore[arg-type]


def test_time_out_after_1_5_s_is_15_keepalives_then_not_allowed(
    client: WebAuthnClient, device: InProcessDevice, clock: ManualClock
) -> None:
    register(client)
    client.user.then(time_out(after=1.5))
    start, mark = clock.now(), len(device.reports)
    with pytest.raises(NotAllowedError) as error:
        client.get(login_options())
    assert error.value.status is CtapStatus.USER_ACTION_TIMEOUT
    times = keepalive_times(device.reports[mark:], start)
    assert times == pytest.approx([i * KEEPALIVE_INTERVAL for i in range(15)])
    assert clock.now() - start == pytest.approx(1.5)
    client.user.assert_done()


def test_slow_approval_succeeds_and_verifies(
    client: WebAuthnClient, device: InProcessDevice, clock: ManualClock
) -> None:
    public_key = register(client)
    login = generate_authentication_options(rp_id=RP_ID)
    client.user.then(wait(0.25), approve(after=0.5))  # reads the prompt, then touches
    start, mark = clock.now(), len(device.reports)
    verified = verify_authentication_response(
        credential=client.get(options_to_json(login)),
        expected_challenge=login.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=public_key,
        credential_current_sign_count=0,
    )
    assert verified.new_sign_count == 1
    assert len(keepalive_times(device.reports[mark:], start)) == 8  # 0.0 .. 0.7 s
    assert clock.now() - start == pytest.approx(0.75)


def test_deny_after_a_moment(
    client: WebAuthnClient, device: InProcessDevice, clock: ManualClock
) -> None:
    register(client)
    client.user.then(deny(after=0.3))
    start, mark = clock.now(), len(device.reports)
    with pytest.raises(NotAllowedError) as error:
        client.get(login_options())
    assert error.value.status is CtapStatus.OPERATION_DENIED
    assert len(keepalive_times(device.reports[mark:], start)) == 3


def test_cancel_mid_flight_is_ctaphid_cancel(
    client: WebAuthnClient, device: InProcessDevice, clock: ManualClock
) -> None:
    register(client)
    client.user.then(cancel(after=0.35))
    start, mark = clock.now(), len(device.reports)
    with pytest.raises(NotAllowedError) as error:
        client.get(login_options())
    assert error.value.status is CtapStatus.KEEPALIVE_CANCEL
    sent = [r for r in device.reports[mark:] if r.to_device]
    assert commands_to_device(sent)[-1] == HidCommand.CANCEL
    assert sent[-1].time - start == pytest.approx(0.4)  # on the first keepalive after 0.35 s
    assert client.get(login_options())["type"] == "public-key"  # and the key still works


def test_abort_is_abort_error_after_ctaphid_cancel(
    client: WebAuthnClient, device: InProcessDevice
) -> None:
    register(client)
    client.user.then(abort(after=0.1))
    with pytest.raises(AbortError):
        client.get(login_options())
    assert commands_to_device(device.reports)[-1] == HidCommand.CANCEL


def test_ceremony_timeout_cancels_the_key_at_the_clients_deadline(
    client: WebAuthnClient, device: InProcessDevice, clock: ManualClock
) -> None:
    register(client)
    client.user.then(wait(100))  # never touches; the RP allows 30 s (the minimum)
    start, mark = clock.now(), len(device.reports)
    with pytest.raises(NotAllowedError) as error:
        client.get(
            login_options(timeout=1000, user_verification=UserVerificationRequirement.DISCOURAGED)
        )
    assert "timed out after 30 seconds" in error.value.message
    cancel_at = [r.time - start for r in device.reports[mark:] if r.to_device][-1]
    assert cancel_at == pytest.approx(30.0)
    # 0.0 .. 29.9 s; the client's timer fires at 30 s and the host cancels on the keepalive due
    # then (the 301st)
    assert len(keepalive_times(device.reports[mark:], start)) == 301


def test_without_a_scripted_touch_the_devices_policy_decides(device: InProcessDevice) -> None:
    from authenticator import Presence

    device.presence = lambda _need: Presence.DENIED
    client = WebAuthnClient(ORIGIN, device)
    with pytest.raises(NotAllowedError) as error:
        register(client)
    assert error.value.status is CtapStatus.OPERATION_DENIED
    client.user.then(approve())  # a scripted touch overrides it for one ceremony
    register(client)
    with pytest.raises(NotAllowedError):
        register(client)
