"""The C-STORE command set of the sender's fast path (studies/services/direct_store.py)
against pynetdicom's own encoding (PS3.7 9.3.1.1, 6.3.1), and the dataset offset."""

from __future__ import annotations

from pathlib import Path

import pytest
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from studies.services.direct_store import (
    StoreRequest,
    c_store_command,
    command_values,
    dataset_offset,
)
from tests.dicom_helpers import make_dataset, write_part10

SOP_CLASS, SOP_INSTANCE = "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1"


@pytest.mark.parametrize(("originator", "originator_id"), [(None, None), ("MOVER", 7), ("ODD", 1)])
def test_the_c_store_command_is_byte_identical_to_pynetdicoms(originator, originator_id):
    ours = StoreRequest(65535, SOP_CLASS, SOP_INSTANCE, 2, originator, originator_id)
    primitive = C_STORE()
    primitive.MessageID = 65535
    primitive.Priority = 2
    primitive.AffectedSOPClassUID = SOP_CLASS
    primitive.AffectedSOPInstanceUID = SOP_INSTANCE  # odd length: padded
    primitive.MoveOriginatorApplicationEntityTitle = originator
    primitive.MoveOriginatorMessageID = originator_id
    primitive._dataset_path = (Path("unused.dcm"), 0)  # a dataset follows
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    assert c_store_command(ours) == encode(message.command_set, True, True)


def test_command_values_reads_back_each_element():
    request = StoreRequest(65535, SOP_CLASS, SOP_INSTANCE, 2, "MOVER", 7)
    values = command_values(c_store_command(request))
    assert values[0x0100] == b"\x01\x00"  # C-STORE-RQ
    assert values[0x0110] == b"\xff\xff"
    assert values[0x1030] == b"MOVER "
    assert values[0x1031] == b"\x07\x00"


def test_the_dataset_offset_is_read_from_the_group_length_or_from_the_file_meta(tmp_path):
    path = write_part10(make_dataset(), tmp_path / "a.dcm")
    data = path.read_bytes()
    offset = dataset_offset(data[:144], path)
    assert data[offset : offset + 4] == b"\x08\x00\x16\x00"  # (0008,0016) SOP Class UID
    assert dataset_offset(b"\0" * 144, path) == offset  # no group length: parsed
