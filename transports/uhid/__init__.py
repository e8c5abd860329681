"""A virtual USB FIDO security key on Linux through /dev/uhid: the ``struct uhid_event`` codec
and report descriptor (``events``), the device (``device.UhidDevice``), presence prompts
(``prompt``), ``fidoemu doctor`` (``doctor``) and the ``serve``/``doctor`` commands (``cli``)."""

from __future__ import annotations
