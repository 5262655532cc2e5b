"""The requestor-side fix for pynetdicom's reactor race (pacs/dimse/scu.py), as plain
functions: a response the reactor takes while a send_* call waits goes back to that call."""

from __future__ import annotations

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from pacs.dimse.scu import keep_responses_for_sender


def _store_response() -> C_STORE:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.Status = 0x0000
    return rsp


def _requestor() -> Association:
    return keep_responses_for_sender(Association(AE(), mode="requestor"))


def test_a_response_the_reactor_takes_while_a_sender_waits_goes_back_to_the_sender() -> None:
    assoc = _requestor()
    rsp = _store_response()
    assoc._reactor_checkpoint.clear()  # what send_c_store does while it waits

    assoc._serve_request(rsp, 3)

    assert assoc.dimse.get_msg(block=False) == (3, rsp)


def test_a_response_nobody_waits_for_is_still_dropped_as_unexpected(caplog) -> None:
    assoc = _requestor()

    assoc._serve_request(_store_response(), 3)

    assert assoc.dimse.get_msg(block=False) == (None, None)
    assert "unexpected C-STORE" in caplog.text
