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

# PS3.4 C.4.1.1.4, C-FIND (Query/Retrieve and Worklist):
# Failed, Identifier does not match SOP Class (no or unknown level, missing unique key, a
# value its VR does not allow).
FIND_IDENTIFIER_MISMATCH = 0xA900
# Failed, Unable to process (an unexpected error, logged with its traceback).
FIND_UNABLE_TO_PROCESS = 0xC000
# Refused, Out of Resources.
FIND_OUT_OF_RESOURCES = 0xA700
# Matching terminated due to Cancel request.
FIND_CANCELLED = Status.CANCEL  # 0xFE00

# PS3.4 C.4.2.1.5 / C.4.3.1.5, C-MOVE and C-GET:
# Refused, Out of Resources, unable to calculate number of matches (over 65535).
RETRIEVE_OUT_OF_RESOURCES_MATCHES = 0xA701
# Refused, Out of Resources, unable to perform sub-operations (all failed, or no
# association with the move destination).
RETRIEVE_UNABLE_TO_PERFORM_SUBOPERATIONS = 0xA702
# Refused, Move Destination unknown (not a device, or a device without a port).
MOVE_DESTINATION_UNKNOWN = 0xA801
# Failed, Identifier does not match SOP Class (no or unknown level, missing unique key).
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
# Failed, Unable to process.
RETRIEVE_UNABLE_TO_PROCESS = 0xC000
# Warning, sub-operations complete, one or more failures or warnings.
RETRIEVE_SUBOPERATIONS_WARNING = 0xB000

# PS3.4 F.7.2 and PS3.7 C.4, N-CREATE / N-SET of Modality Performed Procedure Step:
# Failed, Invalid attribute value (a status N-CREATE or N-SET may not set).
INVALID_ATTRIBUTE_VALUE = 0x0106
# Failed, Processing failure; with MPPS: the performed step may no longer be updated
# (it is COMPLETED or DISCONTINUED, F.7.2.2.2), or an unexpected error.
PROCESSING_FAILURE = 0x0110
# Failed, Duplicate SOP Instance (N-CREATE of an MPPS UID we have).
DUPLICATE_SOP_INSTANCE = 0x0111
# Failed, No such SOP Instance (N-SET of an MPPS UID we do not have).
NO_SUCH_SOP_INSTANCE = 0x0112
# Failed, Missing attribute (Performed Procedure Step Status).
MISSING_ATTRIBUTE = 0x0120
