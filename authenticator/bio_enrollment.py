"""authenticatorBioEnrollment (CTAP 2.1 §6.7; 0x09, and 0x40 for the FIDO_2_1_PRE
prototype) with a simulated fingerprint sensor.

Theory of operation. Enrolled templates are persistent device state (``STATE_KEY``: a CBOR
map from template ID to friendly name, wiped by authenticatorReset). An enrollment is a
stateful sequence in the context's pending slot: enrollBegin picks a new template ID and
captures the first sample; each enrollCaptureNextSample captures one more; a template is
committed when ``bio_samples_per_enrollment`` good samples have been captured. Capturing a
sample is a ``NeedPresence`` (reason ``FINGERPRINT_SAMPLE``): the transport's answer says
whether a finger arrived (APPROVED) or not (TIMED_OUT, CANCELLED, ...); the *quality* of each
sample comes from the ``FingerprintSensor``, which tests and demos script with
``push(SampleStatus.TOO_FAST, ...)`` (default: every sample is good). Only good samples count.

Every subcommand except getFingerprintSensorInfo and cancelCurrentEnrollment needs a
pinUvAuthToken with the ``be`` permission over ``modality || subCommand || subCommandParams``.
Enrolled templates are what lets built-in UV succeed on the bio profile (``enrolled``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Final

from authenticator import cbor
from authenticator.commands import (
    BioEnrollmentKey,
    BioEnrollmentParamKey,
    BioEnrollmentResponseKey,
    BioEnrollmentSubCommand,
    Command,
    TemplateInfoKey,
)
from authenticator.context import Context, Handler
from authenticator.pin_token import Permission
from authenticator.presence import NeedPresence
from authenticator.requests import optional, truncate_utf8
from authenticator.status import CtapError, CtapStatus

STATE_KEY: Final = "bio/templates"
SENSOR_KEY: Final = "bio/sensor"  # in Context.extensions (runtime state)
TEMPLATE_ID_SIZE: Final = 2  # as YubiKey Bio; plenty for bio_max_templates
FINGERPRINT_SAMPLE: Final = "fingerprint sample"  # NeedPresence.reason of a capture


class Modality(IntEnum):
    FINGERPRINT = 0x01


class FingerprintKind(IntEnum):
    TOUCH = 0x01
    SWIPE = 0x02


class SampleStatus(IntEnum):
    """lastEnrollSampleStatus (CTAP 2.1 §6.7, CTAP2_ENROLL_FEEDBACK_FP_*)."""

    GOOD = 0x00
    TOO_HIGH = 0x01
    TOO_LOW = 0x02
    TOO_LEFT = 0x03
    TOO_RIGHT = 0x04
    TOO_FAST = 0x05
    TOO_SLOW = 0x06
    POOR_QUALITY = 0x07
    TOO_SKEWED = 0x08
    TOO_SHORT = 0x09
    MERGE_FAILURE = 0x0A
    EXISTS = 0x0B
    NO_USER_ACTIVITY = 0x0D
    NO_UP_TRANSITION = 0x0E


class FingerprintSensor:
    """The simulated sensor: the status of each next sample, from a script, then GOOD."""

    def __init__(self) -> None:
        self._script: deque[SampleStatus] = deque()
        self.captured: list[SampleStatus] = []  # every sample taken, for tests to inspect

    def __repr__(self) -> str:
        return f"FingerprintSensor({len(self._script)} scripted samples)"

    def push(self, *statuses: SampleStatus) -> None:
        """The next samples' statuses, in order (e.g. ``TOO_FAST, GOOD``)."""
        self._script.extend(statuses)

    def capture(self) -> SampleStatus:
        status = self._script.popleft() if self._script else SampleStatus.GOOD
        self.captured.append(status)
        return status


def sensor(ctx: Context) -> FingerprintSensor:
    """This power cycle's sensor (created on first use)."""
    found = ctx.extensions.get(SENSOR_KEY)
    if not isinstance(found, FingerprintSensor):
        found = FingerprintSensor()
        ctx.extensions[SENSOR_KEY] = found
    return found


def templates(ctx: Context) -> dict[bytes, str]:
    """Enrolled template IDs and their friendly names (empty string when unnamed)."""
    raw = ctx.store.get_state(STATE_KEY)
    return dict(cbor.loads_lenient(raw)) if raw else {}


def enrolled(ctx: Context) -> bool:
    """Whether built-in UV can succeed: the bio profile with at least one finger enrolled."""
    return ctx.config.bio_enrollment and bool(templates(ctx))


def _save(ctx: Context, saved: dict[bytes, str]) -> None:
    ctx.store.put_state(STATE_KEY, cbor.encode(saved) if saved else None)


@dataclass(frozen=True, slots=True)
class BioEnrollmentRequest:
    modality: int | None = None
    sub_command: int | None = None
    sub_command_params: dict[Any, Any] | None = None
    pin_uv_auth_protocol: int | None = None
    pin_uv_auth_param: bytes | None = field(default=None, repr=False)
    get_modality: bool = False

    @classmethod
    def parse(cls, params: Mapping[Any, Any]) -> BioEnrollmentRequest:
        k = BioEnrollmentKey
        return cls(
            modality=optional(params, k.MODALITY, int, "modality"),
            sub_command=optional(params, k.SUB_COMMAND, int, "subCommand"),
            sub_command_params=optional(params, k.SUB_COMMAND_PARAMS, dict, "subCommandParams"),
            pin_uv_auth_protocol=optional(params, k.PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"),
            pin_uv_auth_param=optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
            get_modality=optional(params, k.GET_MODALITY, bool, "getModality") or False,
        )


@dataclass(eq=False)
class PendingEnrollment:
    """An enrollment in progress: its template ID and the good samples still needed."""

    continued_by: ClassVar[tuple[Command, ...]] = (
        Command.BIO_ENROLLMENT,
        Command.BIO_ENROLLMENT_PRE,
    )
    template_id: bytes
    remaining: int


_AUTHENTICATED: Final = frozenset(
    {
        BioEnrollmentSubCommand.ENROLL_BEGIN,
        BioEnrollmentSubCommand.ENROLL_CAPTURE_NEXT_SAMPLE,
        BioEnrollmentSubCommand.ENUMERATE_ENROLLMENTS,
        BioEnrollmentSubCommand.SET_FRIENDLY_NAME,
        BioEnrollmentSubCommand.REMOVE_ENROLLMENT,
    }
)


def bio_enrollment(ctx: Context, req: BioEnrollmentRequest) -> Handler[dict[int, Any] | None]:
    """CTAP 2.1 §6.7, in the spec's order."""
    pending = ctx.pending if isinstance(ctx.pending, PendingEnrollment) else None
    ctx.pending = None  # only an enrollment's own subcommands keep it (restored below)
    if req.get_modality:
        return {BioEnrollmentResponseKey.MODALITY: Modality.FINGERPRINT}
    if req.modality is None or req.sub_command is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "modality and subCommand are required")
    if req.modality != Modality.FINGERPRINT:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "only the fingerprint modality")
    try:
        sub_command = BioEnrollmentSubCommand(req.sub_command)
    except ValueError:
        raise CtapError(CtapStatus.INVALID_SUBCOMMAND, "unknown bioEnrollment subCommand") from None
    params = req.sub_command_params or {}
    if sub_command in _AUTHENTICATED:
        _authorize(ctx, req)
    sub = BioEnrollmentSubCommand
    match sub_command:
        case sub.GET_FINGERPRINT_SENSOR_INFO:
            return _sensor_info(ctx)
        case sub.ENROLL_BEGIN:
            return (yield from _enroll_begin(ctx))
        case sub.ENROLL_CAPTURE_NEXT_SAMPLE:
            return (yield from _capture_next(ctx, pending, params))
        case sub.CANCEL_CURRENT_ENROLLMENT:
            # The enrollment (if any) was dropped from the pending slot above; with none in
            # progress the spec names no error, so cancelling nothing succeeds.
            return None
        case sub.ENUMERATE_ENROLLMENTS:
            return _enumerate(ctx)
        case sub.SET_FRIENDLY_NAME:
            _set_friendly_name(ctx, params)
        case sub.REMOVE_ENROLLMENT:
            _remove(ctx, params)
    return None


def _authorize(ctx: Context, req: BioEnrollmentRequest) -> None:
    """CTAP 2.1 §6.7: pinUvAuthParam over modality || subCommand || subCommandParams, from a
    token with the ``be`` permission."""
    if req.pin_uv_auth_param is None:
        raise CtapError(CtapStatus.PUAT_REQUIRED, "bioEnrollment needs a pinUvAuthToken")
    if req.pin_uv_auth_protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if req.pin_uv_auth_protocol not in ctx.config.pin_uv_protocols:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")
    message = bytes([req.modality or 0, req.sub_command or 0])
    if req.sub_command_params is not None:
        message += cbor.encode(req.sub_command_params)
    ctx.pin_token.authorize(req.pin_uv_auth_protocol, req.pin_uv_auth_param, message, Permission.BE)


def _sensor_info(ctx: Context) -> dict[int, Any]:
    return {
        BioEnrollmentResponseKey.MODALITY: Modality.FINGERPRINT,
        BioEnrollmentResponseKey.FINGERPRINT_KIND: FingerprintKind.TOUCH,
        BioEnrollmentResponseKey.MAX_CAPTURE_SAMPLES_REQUIRED_FOR_ENROLL: (
            ctx.config.bio_samples_per_enrollment
        ),
        BioEnrollmentResponseKey.MAX_TEMPLATE_FRIENDLY_NAME: (
            ctx.config.bio_max_template_friendly_name
        ),
    }


def _enroll_begin(ctx: Context) -> Handler[dict[int, Any]]:
    existing = templates(ctx)
    if len(existing) >= ctx.config.bio_max_templates:
        raise CtapError(CtapStatus.FP_DATABASE_FULL, "no room for another fingerprint")
    template_id = ctx.entropy.random_bytes(TEMPLATE_ID_SIZE)
    while template_id in existing:
        template_id = ctx.entropy.random_bytes(TEMPLATE_ID_SIZE)
    enrollment = PendingEnrollment(template_id, ctx.config.bio_samples_per_enrollment)
    status = yield from _capture(ctx, enrollment)
    return {
        BioEnrollmentResponseKey.TEMPLATE_ID: template_id,
        BioEnrollmentResponseKey.LAST_ENROLL_SAMPLE_STATUS: status,
        BioEnrollmentResponseKey.REMAINING_SAMPLES: enrollment.remaining,
    }


def _capture_next(
    ctx: Context, pending: PendingEnrollment | None, params: Mapping[Any, Any]
) -> Handler[dict[int, Any]]:
    template_id = optional(params, BioEnrollmentParamKey.TEMPLATE_ID, bytes, "templateId")
    if template_id is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "templateId is missing")
    if pending is None or pending.template_id != template_id:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "no enrollment for this templateId")
    status = yield from _capture(ctx, pending)
    return {
        BioEnrollmentResponseKey.LAST_ENROLL_SAMPLE_STATUS: status,
        BioEnrollmentResponseKey.REMAINING_SAMPLES: pending.remaining,
    }


def _capture(ctx: Context, enrollment: PendingEnrollment) -> Handler[SampleStatus]:
    """One sample: wait for a finger, grade it, and commit the template when complete.

    No finger in time (or a cancel) ends the enrollment with that outcome's status."""
    outcome = yield NeedPresence("", reason=FINGERPRINT_SAMPLE)
    outcome.require()
    status = sensor(ctx).capture()
    if status is SampleStatus.GOOD:
        enrollment.remaining -= 1
    if enrollment.remaining > 0:
        ctx.pending = enrollment
    else:
        saved = templates(ctx)
        saved[enrollment.template_id] = ""
        _save(ctx, saved)
    return status


def _enumerate(ctx: Context) -> dict[int, Any]:
    saved = templates(ctx)
    if not saved:
        # CTAP 2.1 §6.7 enumerateEnrollments: none enrolled -> INVALID_OPTION (python-fido2
        # reads that as an empty list).
        raise CtapError(CtapStatus.INVALID_OPTION, "no fingerprints enrolled")
    return {
        BioEnrollmentResponseKey.TEMPLATE_INFOS: [
            {TemplateInfoKey.TEMPLATE_ID: template_id, TemplateInfoKey.TEMPLATE_FRIENDLY_NAME: name}
            for template_id, name in saved.items()
        ]
    }


def _existing_template(ctx: Context, params: Mapping[Any, Any]) -> tuple[dict[bytes, str], bytes]:
    template_id = optional(params, TemplateInfoKey.TEMPLATE_ID, bytes, "templateId")
    if template_id is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "templateId is missing")
    saved = templates(ctx)
    if template_id not in saved:
        raise CtapError(CtapStatus.INVALID_OPTION, "no such template")
    return saved, template_id


def _set_friendly_name(ctx: Context, params: Mapping[Any, Any]) -> None:
    name = optional(params, TemplateInfoKey.TEMPLATE_FRIENDLY_NAME, str, "templateFriendlyName")
    if name is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "templateFriendlyName is missing")
    saved, template_id = _existing_template(ctx, params)
    # Longer names are cut at a character boundary, as user names are (CTAP 2.1 §6.1).
    saved[template_id] = truncate_utf8(name, ctx.config.bio_max_template_friendly_name)
    _save(ctx, saved)


def _remove(ctx: Context, params: Mapping[Any, Any]) -> None:
    saved, template_id = _existing_template(ctx, params)
    del saved[template_id]
    _save(ctx, saved)
