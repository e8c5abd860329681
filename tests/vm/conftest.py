"""tests/vm: the VM tooling's own tests. ``guest/`` holds tests that need a kernel with /dev/uhid
and run *inside* the guest (``tests/e2e/test_uhid_vm.py`` boots it and runs them there); the
host's pytest run must not collect them, so they are ignored unless FIDOEMU_VM_GUEST=1."""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("FIDOEMU_VM_GUEST") == "1" else ["guest"]
