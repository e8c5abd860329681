"""pinUvAuthParam handling shared by makeCredential and getAssertion (CTAP 2.1 §6.1.2 steps
1-2 and §6.2.2 steps 1-2). The PIN/UV protocols themselves live in ``client_pin.py``."""

from __future__ import annotations

from authenticator.context import Context, Handler
from authenticator.status import CtapError, CtapStatus


def supported_pin_uv_protocols(ctx: Context) -> tuple[int, ...]:
    """The PIN/UV auth protocols this device implements (none until clientPIN is enabled)."""
    return ()


def check_pin_uv_auth_param(
    ctx: Context, rp_id: str, param: bytes | None, protocol: int | None
) -> Handler[None]:
    if param is None:
        return
    protocols = supported_pin_uv_protocols(ctx)
    if protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if protocol not in protocols:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")
    yield from ()
