"""Transcoding of stored instances to the transfer syntax a receiver wants [DEV-TS], [QR-3].

Every outgoing send (C-MOVE and C-GET sub-operations, forwarding, send-to-device) calls
:func:`transcode_file` when the stored transfer syntax is not the one negotiated. Choosing the
syntax and the lossy policy belong to the sender; this module only converts, or says why not
with :class:`TranscodeError`.

Isolation. Decoders (GDCM, OpenJPEG, CharLS, libjpeg) are C code fed with untrusted files: a
bad file can crash or hang them. All decoding and encoding therefore runs in child processes
(``python -m studies.transcoding --worker``), never in the caller (the SCP, a Celery worker).
A crash or a timeout in a child becomes a :class:`TranscodeError` and the child is replaced.

Cost. Starting a Python child with numpy and pydicom costs 0.6-0.9 s here, against 10-65 ms
to transcode a 512 x 512 CT through the pipe, so the children are kept: a
:class:`TranscoderPool` of up to N persistent workers, each serving jobs one at a time over a
pipe (one JSON line in, one JSON line out).
The trade-off: a persistent worker can accumulate memory from a huge image or a leaking
codec, so a worker is recycled after ``max_jobs`` jobs; and a crash only costs the one job
that was running in that worker plus one restart. Same-syntax "transcoding" is a plain copy
in the caller (only the file meta header is parsed there, in pure Python).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Transfer syntax UIDs of [DEV-TS] (PS3.5 section 10 and annex A).
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

NATIVE_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        IMPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_LITTLE_ENDIAN,
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_BIG_ENDIAN,
    }
)
# Lossy transfer syntaxes: the sender only uses them for devices configured for lossy [QR-3].
# JPEG-LS near-lossless and JPEG 2000 (.91) may hold lossless data, but as targets we encode
# them lossy, so they count as lossy.
LOSSY_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR_LOSSLESS, JPEG_2000}
)
# Targets we encode to and which library does it.
_PYDICOM_ENCODED = frozenset(
    {JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_2000, RLE_LOSSLESS}
)
_GDCM_ENCODED = frozenset({JPEG_BASELINE, JPEG_LOSSLESS_SV1})
# Lossy Image Compression Method (0028,2114) defined terms, PS3.3 C.7.6.1.1.5.1.
_LOSSY_METHOD = {
    JPEG_BASELINE: "ISO_10918_1",
    JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1",
    JPEG_2000: "ISO_15444_1",
}

DEFAULT_TIMEOUT = 120.0  # seconds for one instance, decode and encode included
WORKER_MAX_JOBS = 500  # recycle a worker after this many jobs (bounds leaked memory)
# Test hook, read by the worker only: "<action>:<substring>" makes the worker crash
# ("segv"), hang ("hang") or read the source with GDCM's ImageReader first ("gdcm-read") for a
# source path containing the substring. Used by the tests: no corpus file crashes the decoders
# our pipeline uses, but a crafted one crashes GDCM's reader.
_TEST_HOOK_ENV = "VESALIUS_TRANSCODING_TEST_HOOK"


class TranscodeError(Exception):
    """The instance cannot be transcoded to the target; the message says why."""


def _uid_name(transfer_syntax_uid: str) -> str:
    from pydicom.uid import UID

    name = UID(transfer_syntax_uid).name
    return f"{name} ({transfer_syntax_uid})" if name != transfer_syntax_uid else name


@functools.cache
def can_decode(transfer_syntax_uid: str) -> bool:
    """True if pixel data in this transfer syntax can be decoded here."""
    if transfer_syntax_uid in NATIVE_TRANSFER_SYNTAXES:
        return True
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(transfer_syntax_uid).is_available)
    except (NotImplementedError, ValueError, ImportError):
        return False


@functools.cache
def can_encode(transfer_syntax_uid: str) -> bool:
    """True if this module can produce the transfer syntax (from decodable pixel data)."""
    if transfer_syntax_uid in NATIVE_TRANSFER_SYNTAXES:
        return True
    if transfer_syntax_uid in _GDCM_ENCODED:
        try:
            import gdcm  # noqa: F401
        except ImportError:
            return False
        return True
    if transfer_syntax_uid in _PYDICOM_ENCODED:
        try:
            from pydicom.pixels import get_encoder

            return bool(get_encoder(transfer_syntax_uid).is_available)
        except (NotImplementedError, ValueError, ImportError):
            return False
    return False


def transcode_file(
    source: Path,
    target_transfer_syntax: str,
    destination: Path,
    *,
    quality: int = 90,
    timeout: float | None = None,
) -> None:
    """Write `source` to `destination` as a DICOM Part 10 file in `target_transfer_syntax`.

    The dataset is unchanged except for the pixel data encoding (and what that implies:
    Photometric Interpretation after colour conversion, Planar Configuration, the Lossy Image
    Compression attributes for a lossy target). `quality` (1-100) applies to lossy targets.
    Raises :class:`TranscodeError`; `destination` is then not left behind.
    """
    source, destination = Path(source), Path(destination)
    if not can_encode(target_transfer_syntax):
        raise TranscodeError(f"unsupported target transfer syntax {target_transfer_syntax}")
    if not 1 <= quality <= 100:
        raise TranscodeError(f"quality must be between 1 and 100, not {quality}")
    try:
        from pydicom.filereader import read_file_meta_info

        source_ts = str(read_file_meta_info(source).get("TransferSyntaxUID", ""))
    except Exception as exc:
        raise TranscodeError(f"cannot read the file meta information: {exc}") from exc
    if source_ts == target_transfer_syntax:
        shutil.copyfile(source, destination)
        return
    if source_ts and not can_decode(source_ts):
        raise TranscodeError(f"cannot decode the stored transfer syntax {source_ts}")
    default_pool().run(
        source, target_transfer_syntax, destination, quality=quality, timeout=timeout
    )


# --- The pool of worker processes (caller side) -------------------------------------------


class _Worker:
    """One child process serving transcoding jobs over its stdin/stdout pipes."""

    def __init__(self, env: dict[str, str] | None) -> None:
        child_env = dict(os.environ if env is None else env)
        project_dir = str(Path(__file__).resolve().parent.parent)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (project_dir, child_env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "studies.transcoding", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env,
            cwd=project_dir,
        )
        self.jobs = 0
        self._buffer = b""

    def request(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one job and wait for its answer; raise TranscodeError on crash or timeout."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.jobs += 1
        try:
            self.process.stdin.write(json.dumps(job).encode() + b"\n")
            self.process.stdin.flush()
        except OSError as exc:
            self.kill()
            raise TranscodeError(f"transcoding worker is gone: {exc}") from exc
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise TranscodeError(f"timeout: transcoding took longer than {timeout:g} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.process.wait()
                reason = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                raise TranscodeError(f"decoder crashed: the transcoding worker died ({reason})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        """Ask the worker to stop (EOF on its stdin), kill it if it does not."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(OSError):
            if self.process.stdout is not None:
                self.process.stdout.close()


class TranscoderPool:
    """Up to `size` persistent worker processes, shared by the caller's threads.

    A job takes an idle worker (or starts one while fewer than `size` exist, else waits),
    and gives it back afterwards. A worker that crashed, timed out or served `max_jobs` jobs
    is discarded; the next job starts a fresh one.
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_jobs: int = WORKER_MAX_JOBS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.size = size or max(1, min(4, os.cpu_count() or 1))
        self.timeout = timeout
        self.max_jobs = max_jobs
        self.env = env
        self._idle: list[_Worker] = []
        self._count = 0
        self._condition = threading.Condition()
        self._closed = False

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._closed:
                    raise TranscodeError("the transcoder pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.kill()
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                self._condition.wait()
        try:
            return _Worker(self.env)
        except BaseException:
            with self._condition:
                self._count -= 1
                self._condition.notify()
            raise

    def _release(self, worker: _Worker, *, keep: bool) -> None:
        with self._condition:
            if keep and not self._closed and worker.alive() and worker.jobs < self.max_jobs:
                self._idle.append(worker)
                worker = None  # type: ignore[assignment]
            else:
                self._count -= 1
            self._condition.notify()
        if worker is not None:
            worker.close()

    def run(
        self,
        source: Path,
        target_transfer_syntax: str,
        destination: Path,
        *,
        quality: int = 90,
        timeout: float | None = None,
    ) -> None:
        """Transcode in a worker; raise TranscodeError with the worker's reason."""
        job = {
            "source": str(source),
            "target": target_transfer_syntax,
            "destination": str(destination),
            "quality": quality,
        }
        worker = self._acquire()
        keep = False
        try:
            answer = worker.request(job, self.timeout if timeout is None else timeout)
            keep = True
        finally:
            self._release(worker, keep=keep)
            if not keep:
                with contextlib.suppress(OSError):
                    Path(destination).unlink(missing_ok=True)
        if not answer.get("ok"):
            raise TranscodeError(answer.get("error") or "transcoding failed")

    def warm(self) -> None:
        """Start the workers now (each costs most of a second) instead of on first use."""
        started = []
        with self._condition:
            missing = self.size - self._count
            self._count += missing
        try:
            for _ in range(missing):
                started.append(_Worker(self.env))
        finally:
            with self._condition:
                self._count -= missing - len(started)
                self._idle.extend(started)
                self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._condition.notify_all()
        for worker in idle:
            worker.close()


_default_pool: TranscoderPool | None = None
_default_pool_pid = 0
_default_pool_lock = threading.Lock()


def default_pool() -> TranscoderPool:
    """The process-wide pool, created on first use (and again in a forked child)."""
    global _default_pool, _default_pool_pid
    with _default_pool_lock:
        if _default_pool is None or _default_pool_pid != os.getpid():
            _default_pool = TranscoderPool()
            _default_pool_pid = os.getpid()
        return _default_pool


def shutdown_default_pool() -> None:
    """Stop the process-wide pool's workers (they also stop when the caller exits)."""
    global _default_pool
    with _default_pool_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None and _default_pool_pid == os.getpid():
        pool.close()


# --- The work itself (worker side) --------------------------------------------------------

_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_bytes(value: bytes, width: int) -> bytes:
    import numpy as np

    usable = len(value) - len(value) % width
    swapped = np.frombuffer(value[:usable], dtype=f"u{width}").byteswap().tobytes()
    return swapped + value[usable:]


def _swap_endianness(ds: Any) -> None:
    """Byte-swap the values pydicom writes as-is (OW, OF, OL, OD, OV), PS3.5 section 7.3.

    Iterating a dataset converts its raw elements, so numbers and text are then re-encoded by
    the writer in the new byte order. Pixel Data is swapped by Bits Allocated (what pydicom's
    reader assumes for big endian); UN values cannot be swapped (unknown structure) and stay.
    """
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_endianness(item)
        elif elem.tag == 0x7FE00010 and isinstance(elem.value, bytes):
            if bits_allocated in (16, 32, 64):
                elem.value = _swap_bytes(elem.value, bits_allocated // 8)
            if bits_allocated <= 8:
                elem.VR = "OB"
        elif elem.VR in _SWAP_WIDTH and isinstance(elem.value, bytes):
            elem.value = _swap_bytes(elem.value, _SWAP_WIDTH[elem.VR])


def _refuse_unencodable(ds: Any, target: str) -> None:
    """Raise TranscodeError for pixel data the target's encoder cannot take."""
    name = _uid_name(target)
    for keyword in ("FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            raise TranscodeError(f"{name} cannot encode {keyword}")
    bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if bits_allocated not in (8, 16):
        raise TranscodeError(f"bit depth not encodable: {name} cannot take {bits_allocated}-bit")
    if target in LOSSY_TRANSFER_SYNTAXES and photometric == "PALETTE COLOR":
        raise TranscodeError(f"photometric not encodable: no lossy {name} of palette indices")
    if target == JPEG_BASELINE:
        if bits_allocated != 8 or bits_stored > 8:
            raise TranscodeError(
                f"bit depth not encodable: {name} needs 8-bit data, not {bits_stored}-bit"
            )
        if signed:
            raise TranscodeError(f"bit depth not encodable: {name} needs unsigned data")
    if target == JPEG_LOSSLESS_SV1 and bits_allocated == 16 and samples == 3:
        raise TranscodeError(f"bit depth not encodable: {name} of 16-bit colour (GDCM cannot)")
    if target in (JPEG_BASELINE, JPEG_LOSSLESS_SV1) and photometric not in (
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "PALETTE COLOR",
    ):
        raise TranscodeError(f"photometric not encodable: {name} from {photometric}")


def _jpeg_chroma_subsampled(frame: bytes) -> bool:
    """True if a JPEG's first component has larger sampling factors than the others."""
    start = frame.find(b"\xff\xc0")  # SOF0, baseline (ITU T.81 B.2.2)
    if start < 0 or len(frame) < start + 10:
        return False
    components = frame[start + 9]
    factors = [
        frame[start + 11 + 3 * i] for i in range(components) if start + 11 + 3 * i < len(frame)
    ]
    return len(set(factors)) > 1


def _j2k_ratio(quality: int) -> float:
    """JPEG 2000 compression ratio for a quality: 90 -> 5:1, 50 -> 21:1, 1 -> 40.6:1."""
    return 1 + (100 - quality) * 0.4


def _encode_with_gdcm(ds: Any, target: str, quality: int, workdir: str) -> None:
    """JPEG Baseline / JPEG Lossless SV1 with GDCM (pydicom 3.0 has no JPEG encoder), and
    JPEG 2000 of images too small for pydicom's OpenJPEG settings.

    Only the Image Pixel module goes through GDCM, so GDCM cannot touch the rest of the
    dataset; its encapsulated Pixel Data (and Photometric Interpretation) is copied back.
    """
    import gdcm
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import generate_frames
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixel_module = Dataset()
    for keyword in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelData",
    ):
        if keyword in ds:
            setattr(pixel_module, keyword, ds[keyword].value)
    palette = pixel_module.PhotometricInterpretation == "PALETTE COLOR"
    if target == JPEG_BASELINE and pixel_module.PhotometricInterpretation == "RGB":
        # GDCM writes RGB input with a colour transform the decoders do not undo; convert
        # to YBR_FULL here (PS3.5 8.2.1) and GDCM encodes the components as they are.
        from pydicom.pixels import convert_color_space

        ybr = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL")
        pixel_module.PixelData = ybr.tobytes()
        pixel_module.PhotometricInterpretation = "YBR_FULL"
        pixel_module.PlanarConfiguration = 0
    if palette:
        # Lossless coding of indices does not need the LUT; GDCM aborts on a palette
        # image without one, so it is shown the indices as greyscale.
        pixel_module.PhotometricInterpretation = "MONOCHROME2"
    pixel_module.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    pixel_module.SOPInstanceUID = generate_uid()
    pixel_module.file_meta = FileMetaDataset()
    pixel_module.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pixel_module.file_meta.MediaStorageSOPClassUID = pixel_module.SOPClassUID
    pixel_module.file_meta.MediaStorageSOPInstanceUID = pixel_module.SOPInstanceUID
    native_path = os.path.join(workdir, "native.dcm")
    encoded_path = os.path.join(workdir, "encoded.dcm")
    pixel_module.save_as(native_path, enforce_file_format=True)

    reader = gdcm.ImageReader()
    reader.SetFileName(native_path)
    if not reader.Read():
        raise TranscodeError("GDCM cannot read the decoded pixel data")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(target)))
    if target == JPEG_BASELINE:
        codec = gdcm.JPEGCodec()
        codec.SetLossyFlag(True)
        codec.SetQuality(float(quality))
        change.SetUserCodec(codec)
    elif target in (JPEG_2000_LOSSLESS, JPEG_2000):
        # Small images: fewer wavelet resolutions than OpenJPEG's default 6 (which needs
        # 32 pixels or more along each side, and is all pydicom lets us ask for).
        smallest = min(int(ds.Rows), int(ds.Columns))
        codec = gdcm.JPEG2000Codec()
        codec.SetNumberOfResolutions(max(1, min(6, smallest.bit_length() - 2)))
        # Reversible for JPEG 2000 (.91) too: .91 may hold lossless data, and the rate
        # control of a handful of pixels is no good (the caller then marks nothing lossy).
        codec.SetReversible(True)
        change.SetUserCodec(codec)
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise TranscodeError(f"GDCM could not encode {_uid_name(target)}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(encoded_path)
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise TranscodeError(f"GDCM could not write {_uid_name(target)}")
    encoded = pydicom.dcmread(encoded_path)
    if encoded.file_meta.TransferSyntaxUID != target:
        raise TranscodeError(f"GDCM did not produce {_uid_name(target)}")
    ds.PixelData = encoded.PixelData
    ds["PixelData"].VR = "OB"
    if not palette:
        ds.PhotometricInterpretation = encoded.PhotometricInterpretation
    if target == JPEG_BASELINE and ds.PhotometricInterpretation == "YBR_FULL":
        first_frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        if _jpeg_chroma_subsampled(first_frame):
            # GDCM's libjpeg subsamples chroma (4:2:0); PS3.5 8.2.1 names that YBR_FULL_422.
            ds.PhotometricInterpretation = "YBR_FULL_422"
    if "PlanarConfiguration" in encoded:
        ds.PlanarConfiguration = encoded.PlanarConfiguration
    ds.file_meta.TransferSyntaxUID = target


def _values(ds: Any, keyword: str) -> list[Any]:
    """The values of a possibly multi-valued element as a list ([] when absent or empty)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    from pydicom.multival import MultiValue

    return list(value) if isinstance(value, MultiValue | list) else [value]


def _mark_lossy(ds: Any, target: str, native_size: int) -> None:
    """Lossy Image Compression attributes, PS3.3 C.7.6.1.1.5: "01", method and ratio appended
    to those of any earlier lossy compression."""
    from pydicom.encaps import generate_fragments

    encoded_size = sum(len(f) for f in generate_fragments(ds.PixelData)) or 1
    methods = _values(ds, "LossyImageCompressionMethod")
    ratios = _values(ds, "LossyImageCompressionRatio")
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = [*methods, _LOSSY_METHOD[target]]
    ds.LossyImageCompressionRatio = [*ratios, f"{native_size / encoded_size:.4g}"]


def _do_transcode(source: str, target: str, destination: str, quality: int) -> None:
    """Decode `source` and write it in `target` (runs in a worker process)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(source)
    source_ts = str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    has_pixels = "PixelData" in ds
    if source_ts == EXPLICIT_VR_BIG_ENDIAN:
        _swap_endianness(ds)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    elif source_ts not in NATIVE_TRANSFER_SYNTAXES and has_pixels:
        try:
            # YBR is converted to RGB, as pydicom's pixel_array does; the SOP Instance UID
            # stays (a send delivers the stored instance, PS3.4 C.4.2.1.4.1 sub-operations).
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:
            raise TranscodeError(f"cannot decode {_uid_name(source_ts)}: {exc}") from exc

    if target in NATIVE_TRANSFER_SYNTAXES or not has_pixels:
        # Without Pixel Data an encapsulated syntax is encoded as Explicit VR Little Endian.
        if target == EXPLICIT_VR_BIG_ENDIAN:
            _swap_endianness(ds)
        ds.file_meta.TransferSyntaxUID = target
    else:
        native_size = len(ds.PixelData)
        photometric = str(ds.get("PhotometricInterpretation", ""))
        if photometric in ("YBR_FULL_422", "YBR_FULL") and int(ds.SamplesPerPixel) == 3:
            # Native YBR (422 is subsampled): hand the encoders full-resolution RGB.
            arr = ds.pixel_array
            ds.PhotometricInterpretation = "RGB"
            ds.PlanarConfiguration = 0
            ds.PixelData = arr.tobytes()
            native_size = len(ds.PixelData)
        _refuse_unencodable(ds, target)
        small = min(int(ds.Rows), int(ds.Columns)) < 32
        try:
            if target in _GDCM_ENCODED or (small and target in (JPEG_2000_LOSSLESS, JPEG_2000)):
                with tempfile.TemporaryDirectory(prefix="transcode-") as workdir:
                    _encode_with_gdcm(ds, target, quality, workdir)
            else:
                kwargs: dict[str, Any] = {}
                if target == JPEG_LS_NEAR_LOSSLESS:
                    # NEAR: the maximum error per sample; quality 90 -> 2, 100 -> 1.
                    kwargs["jls_error"] = max(1, round((100 - quality) / 5))
                elif target == JPEG_2000:
                    kwargs["j2k_cr"] = [_j2k_ratio(quality)]
                ds.compress(target, generate_instance_uid=False, **kwargs)
        except TranscodeError:
            raise
        except Exception as exc:
            raise TranscodeError(f"cannot encode {_uid_name(target)}: {exc}") from exc
        if target in _LOSSY_METHOD and not (small and target == JPEG_2000):
            _mark_lossy(ds, target, native_size)

    temporary = f"{destination}.part"
    try:
        pydicom.dcmwrite(temporary, ds, enforce_file_format=True)
        os.replace(temporary, destination)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _apply_test_hook(source: str) -> None:
    hook = os.environ.get(_TEST_HOOK_ENV, "")
    action, _, marker = hook.partition(":")
    if not marker or marker not in source:
        return
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "gdcm-read":
        # GDCM's own reader (our pipeline decodes through pydicom's plugins instead); it
        # aborts the process on some inputs, e.g. PALETTE COLOR without its LUT.
        import gdcm

        reader = gdcm.ImageReader()
        reader.SetFileName(source)
        if reader.Read():
            reader.GetImage().GetBuffer()
    elif action == "hang":
        time.sleep(3600)


def _serve() -> None:
    """Worker loop: one JSON job per line on stdin, one JSON answer per line on stdout."""
    # Keep the protocol channel private: codecs that print must not corrupt it.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import warnings

    import numpy  # noqa: F401  (warm the imports before the first job)
    import pydicom.config

    # Pass stored values through as they are (a send must not fail on a value an old
    # modality wrote badly), and keep values (patient data) out of warnings in the log.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    warnings.simplefilter("ignore")

    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        job = json.loads(line)
        answer: dict[str, Any] = {"ok": True}
        try:
            _apply_test_hook(job["source"])
            _do_transcode(job["source"], job["target"], job["destination"], job["quality"])
        except TranscodeError as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            answer = {"ok": False, "error": f"cannot transcode: {type(exc).__name__}: {exc}"}
        channel.write(json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _serve()
    else:
        sys.exit("usage: python -m studies.transcoding --worker")
