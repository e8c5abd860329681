"""fidoemu's CTAP2 authenticator core: a sans-IO virtual FIDO2 security key."""

from __future__ import annotations

from authenticator.auth_data import AuthDataFlag
from authenticator.authenticator import Authenticator
from authenticator.clock import Clock, ManualClock, SystemClock
from authenticator.commands import Command
from authenticator.config import (
    BIO_SECURITY_KEY,
    CTAP2_0_KEY,
    FIDOEMU_AAGUID,
    PLATFORM,
    PROFILES,
    SECURITY_KEY,
    AttestationFormat,
    AuthenticatorConfig,
    CounterMode,
    NonResident,
    PinComplexityPolicy,
)
from authenticator.credential import StoredCredential
from authenticator.faults import Faults
from authenticator.keys import CoseAlgorithm, SeededEntropy
from authenticator.presence import (
    Done,
    NeedPresence,
    Presence,
    PresencePolicy,
    ScriptedPresence,
    Step,
    approve,
    deny,
    time_out,
)
from authenticator.status import CtapError, CtapStatus
from authenticator.store import MemoryStore, SqliteStore, Store, StoreFileError

__all__ = [
    "BIO_SECURITY_KEY",
    "CTAP2_0_KEY",
    "FIDOEMU_AAGUID",
    "PLATFORM",
    "PROFILES",
    "SECURITY_KEY",
    "AttestationFormat",
    "AuthDataFlag",
    "Authenticator",
    "AuthenticatorConfig",
    "Clock",
    "Command",
    "CoseAlgorithm",
    "CounterMode",
    "CtapError",
    "CtapStatus",
    "Done",
    "Faults",
    "ManualClock",
    "MemoryStore",
    "NeedPresence",
    "NonResident",
    "PinComplexityPolicy",
    "Presence",
    "PresencePolicy",
    "ScriptedPresence",
    "SeededEntropy",
    "SqliteStore",
    "Step",
    "Store",
    "StoreFileError",
    "StoredCredential",
    "SystemClock",
    "approve",
    "deny",
    "time_out",
]
