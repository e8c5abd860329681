"""Several processes on one machine share one account through a SQLite cloud file: a phone
registers in a child process; the laptop joins in this process with the recovery code and signs
in; the phone's process restarts and rejoins from its own local store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import AttestedCredentialData, PublicKeyCredentialRpEntity

from authenticator import SqliteStore
from transports.inprocess import InProcessDevice
from transports.sync import ICLOUD_KEYCHAIN, Cloud

PHONE = """
import sys
from pathlib import Path
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity
from fido2.webauthn import ResidentKeyRequirement
from authenticator import SqliteStore
from transports.inprocess import InProcessDevice
from transports.sync import Cloud, ICLOUD_KEYCHAIN

work = Path(sys.argv[1])
cloud = Cloud(work / "cloud.sqlite", strict=True)
account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN, recovery_code="1234")
phone = account.device("iPhone", store=SqliteStore(work / "iphone.sqlite"))
if sys.argv[2] == "register":
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"alice", name="alice"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    client = Fido2Client(
        InProcessDevice(phone.authenticator), DefaultClientDataCollector("https://example.com")
    )
    data = server.register_complete(state, client.make_credential(options.public_key))
    print(bytes(data.credential_data).hex())
else:
    cloud.advance(seconds=60)  # each process has its own simulated clock: move well past
    print(phone.is_member, sorted(c.user_id.decode() for c in phone.passkeys()))
"""


def _phone(work: Path, action: str) -> str:
    script = work / "phone.py"
    script.write_text(textwrap.dedent(PHONE))
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(script), str(work), action],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_processes_share_an_account_through_a_sqlite_cloud(tmp_path: Path) -> None:
    credential = AttestedCredentialData(bytes.fromhex(_phone(tmp_path, "register")))

    cloud = Cloud(tmp_path / "cloud.sqlite", strict=True)
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN)
    laptop = account.device(
        "MacBook", store=SqliteStore(tmp_path / "macbook.sqlite"), recovery_code="1234"
    )
    cloud.advance(seconds=5)
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    client = Fido2Client(
        InProcessDevice(laptop.authenticator), DefaultClientDataCollector("https://example.com")
    )
    options, state = server.authenticate_begin()
    assertion = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [credential], assertion)
    assert assertion.raw_id == credential.credential_id

    laptop.store.delete(credential.credential_id)
    assert _phone(tmp_path, "check") == "True []", "the phone did not rejoin or sync the deletion"
