"""Domain errors of the worklist services; the API and the DIMSE handlers map them."""

from __future__ import annotations


class WorklistError(Exception):
    """A worklist change that cannot be made; the message says why."""


class ConfirmationRequired(WorklistError):
    """Deleting something IN_PROGRESS needs the caller to confirm it [MWL-5]."""


class InvalidStatusChange(WorklistError):
    """A step cannot move to the requested status (reset of a SCHEDULED step, MPPS update
    of a finished performed step, ...)."""


class InvalidWorklistItem(WorklistError):
    """A worklist item (a .wl file, a RIS message) that cannot become a procedure."""
