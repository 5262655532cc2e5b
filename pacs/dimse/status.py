"""DIMSE status codes used by the SCP, by name (PS3.4 Annex B and C, PS3.7 Annex C).

Handlers return these names, never bare numbers."""

from __future__ import annotations

from pynetdicom.status import Status

SUCCESS = Status.SUCCESS  # 0x0000
PENDING = Status.PENDING  # 0xFF00
CANCEL = Status.CANCEL  # 0xFE00

# PS3.7 C.4: the requester may not use this service (device ACL, [DEV-ACL]).
REFUSED_NOT_AUTHORIZED = 0x0124
# PS3.4 B.2.3: Refused, Out of Resources (no storage with free space, temp folder, database).
STORE_OUT_OF_RESOURCES = 0xA700
# PS3.4 B.2.3: Error, Data Set does not match SOP Class (UIDs differ from the command).
STORE_DATASET_MISMATCH = 0xA900
# PS3.4 B.2.3: Error, Cannot understand (not DICOM, truncated, required UIDs missing).
STORE_CANNOT_UNDERSTAND = 0xC000
