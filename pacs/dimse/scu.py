"""Requestor-side associations that never lose a response to pynetdicom's reactor.

pynetdicom 3.0 pauses its reactor thread around ``send_c_store`` (and the other ``send_*``
methods) with a check-then-act that can fail: the reactor may already be past its pause
point when the sender checks it, and when the peer answers fast it takes the response off
the DIMSE queue itself, logs "Received unexpected C-STORE service message" and drops it.
The sender then waits for the DIMSE timeout and aborts the association: an instance the peer
stored is reported as failed. Seen with DCMTK ``storescp`` on a loaded machine.

:func:`keep_responses_for_sender` makes the reactor put such a response back on the queue
while a ``send_*`` call is waiting for it (pynetdicom clears ``_reactor_checkpoint`` for
exactly that time), so the waiting call receives it.

This module imports no Django: the ``dcm-import`` tool uses it too.
"""

from __future__ import annotations

from pynetdicom.association import Association


class _ResponsesStayQueued(Association):
    """An association whose reactor hands responses back to the waiting ``send_*`` call."""

    def _serve_request(self, msg, context_id: int) -> None:
        a_sender_is_waiting = not self._reactor_checkpoint.is_set()
        if a_sender_is_waiting and not msg.is_valid_request:
            self.dimse.msg_queue.put((context_id, msg))
            return
        super()._serve_request(msg, context_id)


def keep_responses_for_sender(assoc: Association) -> Association:
    """Give an established requestor association the fix (same object, same state)."""
    if type(assoc) is Association:
        assoc.__class__ = _ResponsesStayQueued
    return assoc
