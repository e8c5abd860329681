"""Read-only views of clientPIN/authenticatorConfig state that extensions report
(CTAP 2.1 §6.11.4 setMinPINLength). An adapter, so extensions never write PIN state."""

from __future__ import annotations

from typing import Final

from authenticator.context import Context

DEFAULT_MIN_PIN_LENGTH: Final = 4  # CTAP 2.1 §6.5.1


def supports_min_pin_length(ctx: Context) -> bool:
    """Whether authenticatorConfig setMinPINLength exists on this device."""
    return False


def min_pin_length(ctx: Context) -> int:
    return DEFAULT_MIN_PIN_LENGTH


def min_pin_length_rp_ids(ctx: Context) -> tuple[str, ...]:
    return ()
