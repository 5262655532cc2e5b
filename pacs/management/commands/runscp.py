"""``python manage.py runscp``: the DICOM SCP.

One Python process cannot use more than one core, so by default this command starts one SCP
process per core (``PACS_SCP_PROCESSES`` or ``--processes``) sharing one listening socket
(opened here with SO_REUSEPORT, so further ``runscp`` instances may share the port too) and
supervises them: a worker that dies is restarted, SIGTERM or SIGINT is
passed on and each worker drains its running associations before it exits. With one process
the SCP runs in this process directly. Every process serves both ports: store/query/retrieve
on ``PACS_DICOM_PORT`` and the worklist (MWL C-FIND, MPPS) on ``PACS_MWL_PORT``.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pacs.config import apply_environment
from storages.models import Storage
from storages.services import ensure_default_storage
from studies.services.ingest import clean_leftovers

logger = logging.getLogger("pacs.dimse.runscp")

_PR_SET_PDEATHSIG = 1
_RESTART_DELAY_SECONDS = 1.0
_FAST_FAILURE_SECONDS = 5.0
_MAX_FAST_FAILURES = 3


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if the supervisor disappears (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Command(BaseCommand):
    help = (
        "Run the DICOM SCP: C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET on PACS_DICOM_PORT; "
        "MWL C-FIND and MPPS on PACS_MWL_PORT."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.PACS_SCP_PROCESSES,
            help="SCP processes sharing the port (default: PACS_SCP_PROCESSES, one per core).",
        )
        parser.add_argument("--host", default=settings.PACS_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.PACS_DICOM_PORT)
        parser.add_argument(
            "--mwl-port",
            type=int,
            default=settings.PACS_MWL_PORT,
            help="Port of the MWL and MPPS SCP (default: PACS_MWL_PORT).",
        )
        parser.add_argument("--worker", action="store_true", help="Internal: one SCP worker.")
        parser.add_argument(
            "--listen-fd", type=int, default=None, help="Internal: inherited listening socket."
        )
        parser.add_argument(
            "--mwl-listen-fd", type=int, default=None, help="Internal: inherited MWL socket."
        )

    def handle(self, *args, **options) -> None:
        if options["processes"] < 1:
            raise CommandError("--processes must be at least 1")
        if not options["worker"]:
            runtime = apply_environment()
            ensure_default_storage(settings.DEFAULT_STORAGE_DIR)
            storage_paths = list(Storage.objects.values_list("path", flat=True))
            removed = clean_leftovers(Path(runtime.temp_dir), storage_paths)
            if removed:
                logger.info("Removed %d file(s) left by an earlier SCP", removed)
        ports = (options["port"], options["mwl_port"])
        if options["worker"] or options["processes"] == 1:
            listen_fds = (options["listen_fd"], options["mwl_listen_fd"])
            self._serve(options["host"], ports, listen_fds)
        else:
            self._supervise(options["processes"], options["host"], ports)

    def _serve(
        self, host: str, ports: tuple[int, int], listen_fds: tuple[int | None, int | None]
    ) -> None:
        """Serve store/query/retrieve on the first port and MWL/MPPS on the second."""
        from pacs.dimse.server import StoreServer, WorklistServer

        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        servers = []
        for server_class, port, listen_fd in zip(
            (StoreServer, WorklistServer), ports, listen_fds, strict=True
        ):
            try:
                servers.append(server_class(host, port, listen_fd))
            except (OSError, RuntimeError) as exc:
                for server in servers:
                    server.server.server_close()
                raise CommandError(
                    f"Cannot start the {server_class.name} on port {port}: {exc}"
                ) from exc
        for server in servers:
            server.start()
        stop.wait()
        logger.info("Stopping: draining associations (up to %ss)", settings.PACS_DRAIN_SECONDS)
        stoppers = [
            threading.Thread(target=server.stop, args=(settings.PACS_DRAIN_SECONDS,))
            for server in servers
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def _spawn(
        self, host: str, ports: tuple[int, int], listen_fds: tuple[int, int]
    ) -> subprocess.Popen:
        port, mwl_port = ports
        listen_fd, mwl_listen_fd = listen_fds
        command = [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "runscp",
            "--worker",
            "--host",
            host,
            "--port",
            str(port),
            "--listen-fd",
            str(listen_fd),
            "--mwl-port",
            str(mwl_port),
            "--mwl-listen-fd",
            str(mwl_listen_fd),
        ]
        return subprocess.Popen(command, preexec_fn=_die_with_parent, pass_fds=listen_fds)

    def _supervise(self, count: int, host: str, ports: tuple[int, int]) -> None:
        stopping = threading.Event()

        def request_stop(signum, _frame) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        from pacs.dimse.server import listening_socket

        sockets = []
        for port in ports:
            try:
                sockets.append(listening_socket(host, port))
            except OSError as exc:
                for sock in sockets:
                    sock.close()
                raise CommandError(f"Cannot listen on port {port}: {exc}") from exc
        listen_fds = (sockets[0].fileno(), sockets[1].fileno())
        workers = {self._spawn(host, ports, listen_fds): time.monotonic() for _ in range(count)}
        logger.info("Started %d SCP processes on ports %s and %s", count, *ports)
        fast_failures = 0
        while not stopping.is_set():
            stopping.wait(0.5)
            for worker, started in list(workers.items()):
                code = worker.poll()
                if code is None or stopping.is_set():
                    continue
                del workers[worker]
                logger.error("SCP process %s exited with status %s; restarting", worker.pid, code)
                if time.monotonic() - started < _FAST_FAILURE_SECONDS:
                    fast_failures += 1
                    if fast_failures >= _MAX_FAST_FAILURES:
                        self._stop_workers(workers)
                        raise CommandError("SCP processes keep failing at start; see the log")
                time.sleep(_RESTART_DELAY_SECONDS)
                workers[self._spawn(host, ports, listen_fds)] = time.monotonic()
        for sock in sockets:
            sock.close()  # the workers close their copies as they stop
        self._stop_workers(workers)

    @staticmethod
    def _stop_workers(workers: dict[subprocess.Popen, float]) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.PACS_DRAIN_SECONDS + 5
        for worker in workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
        logger.info("All SCP processes stopped")
