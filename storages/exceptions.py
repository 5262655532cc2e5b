"""Storage errors; each maps to a DICOM status and an HTTP status where it surfaces."""


class StorageError(Exception):
    """Base class for storage failures."""


class NoStorageAvailable(StorageError):
    """No enabled storage has more free space than the limit [STO-3], or every storage is
    under the critical watermark [STO-7]."""


class StoragePathInvalid(StorageError):
    """A storage path that does not exist, is not writable or is not absolute [STO-2]."""
