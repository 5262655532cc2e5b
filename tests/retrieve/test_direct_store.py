"""The C-STORE command set of the sender's fast path (studies/services/direct_store.py)
against pynetdicom's own encoding (PS3.7 9.3.1.1, 6.3.1), and its PDV fragmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from studies.services.direct_store import c_store_command, command_values, dataset_offset
from tests.dicom_helpers import make_dataset, write_part10


def c_store_request(originator: str | None, originator_id: int | None) -> C_STORE:
    request = C_STORE()
    request.MessageID = 65535
    request.Priority = 2
    request.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    request.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"  # odd length: padded
    request.MoveOriginatorApplicationEntityTitle = originator
    request.MoveOriginatorMessageID = originator_id
    return request


@pytest.mark.parametrize(("originator", "originator_id"), [(None, None), ("MOVER", 7), ("ODD", 1)])
def test_the_c_store_command_is_byte_identical_to_pynetdicoms(originator, originator_id):
    request = c_store_request(originator, originator_id)
    request._dataset_path = (Path("unused.dcm"), 0)  # a dataset follows
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    assert c_store_command(request) == encode(message.command_set, True, True)


def test_command_values_reads_back_each_element():
    values = command_values(c_store_command(c_store_request("MOVER", 7)))
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
