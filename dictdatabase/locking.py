"""Read and write locks on databases, across threads and processes.

The protocol (see docs/architecture.md):

- Each database has a private folder ``<storage>/.ddb/<encoded name>/``. A lock is a file
  there named ``<order>.<pid>.<token>.<tid>.<nonce>.<stage>.<mode>.lock``: ``order`` is
  ``time.monotonic_ns()`` at the request (one clock for all processes of a host), ``token``
  tells a reused pid from the original owner, ``stage`` is ``need`` (waiting) or ``has``
  (granted), ``mode`` is ``read`` or ``write``.
- Every decision is taken under the *gate*, a kernel ``flock`` on the private folder held
  for a few system calls. So two processes never both decide they won, and two waiters
  never both break the same stale lock.
- What excludes is a kernel ``flock`` on the folder's ``kernel`` file: shared for reads,
  exclusive for writes. The kernel releases it when its process dies, so a dead holder
  never blocks anyone. Locks taken through this API also show as ``has`` lock files; the
  library's own locks (sessions, writes) hold only the kernel lock, and
  :class:`FileLocksSnapshot` reports them from the kernel's lock table.
- A request first tries to take the kernel lock without queueing, for up to
  ``FAIRNESS_WINDOW`` seconds (polling with capped backoff). After that it queues as a
  ``need`` file, which stops everybody else from overtaking it: a write is granted when no
  earlier request waits, a read when no earlier write request waits. So requests are served
  in order once they have waited the window, and readers cannot starve a writer.
- Waiting is a sleep with capped exponential backoff starting at ``SLEEP_TIMEOUT``. Each
  waiting thread also listens on its own wake-up FIFO (``wake.<pid>.<tid>``), and whoever
  releases a lock writes to the FIFOs of the requests that may be granted next, so a lock
  changes hands within microseconds, without polling.
- A released lock file is parked (``parked.<pid>.<token>.<tid>``) and renamed back into
  service by the thread's next request: a rename costs much less than creating a file.
  Parked files and FIFOs of dead processes are swept when their locks are found orphaned.
- A lock is a lease. One keeper thread per process (not one per lock) refreshes the mtime
  of the kernel file (and of the lock file) of every held lock every
  ``LOCK_KEEP_ALIVE_TIMEOUT`` seconds (at most a quarter of ``REMOVE_ORPHAN_LOCK_TIMEOUT``).
  A lock whose process is gone is free at once (the kernel dropped it; its lock file is
  removed by the next queued request). A queued request first in line whose kernel lock
  stays busy while the kernel file's mtime does not change for ``REMOVE_ORPHAN_LOCK_TIMEOUT``
  seconds of the waiter's own monotonic clock (so wall-clock jumps do not matter) breaks the
  lock: it replaces the kernel file with a new one, under the gate.
- Fencing: a lock holder commits inside :meth:`AbstractLock.commit_guard`, which checks
  under the gate that its kernel file is still the current one. An owner whose lock was
  broken (it was paused longer than the orphan timeout) gets ``errors.LockError`` and
  writes nothing.
- A thread asking for a lock on a database it already holds (same kind, or an upgrade or
  downgrade) gets ``errors.LockError`` at once, and no lock file is left behind.

The module constants are read at call time, so assigning them takes effect for the next
lock. They are per process.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import select
import struct
import sys
import threading
import time
from typing import ContextManager, Dict, Iterator, List, Optional, Tuple

from . import utils
from .errors import LockError

__all__ = [
    "AQUIRE_LOCK_TIMEOUT",
    "LOCK_KEEP_ALIVE_TIMEOUT",
    "REMOVE_ORPHAN_LOCK_TIMEOUT",
    "SLEEP_TIMEOUT",
    "AbstractLock",
    "FileLocksSnapshot",
    "LockFileMeta",
    "ReadLock",
    "WriteLock",
    "held_lock",
]

#: Requests younger than this many seconds may be overtaken: a request first tries to take
#: the lock without queueing (polling with capped backoff), so that a running process keeps
#: working instead of handing the lock to a sleeping one. That is what makes heavy
#: contention fast (about 4x with 16 processes on 2 cores). A request older than the window
#: queues, and from then on nobody overtakes it: locks are granted in request order, and a
#: stream of readers cannot starve a writer. 0 grants every lock strictly in request order.
FAIRNESS_WINDOW = 0.02
#: How long a lock must have blocked a waiter before it checks whether the owner is alive.
ORPHAN_CHECK_DELAY = 0.02
_LEASE_SAMPLE = 0.05
#: First wait between two looks at a busy lock, in seconds; later waits double.
SLEEP_TIMEOUT = 0.001
#: Longest wait between two looks at a busy lock (a wake-up usually comes much sooner).
MAX_SLEEP_TIMEOUT = 0.05
#: How long to wait for a lock before raising ``errors.LockError``.
AQUIRE_LOCK_TIMEOUT = 60.0
#: A lock whose lease was not refreshed for this long is an orphan and is removed.
REMOVE_ORPHAN_LOCK_TIMEOUT = 20.0
#: How often the owner refreshes the lease of each lock it holds.
LOCK_KEEP_ALIVE_TIMEOUT = 1.0

READ = "read"
WRITE = "write"
NEED = "need"
HAS = "has"
_SUFFIX = ".lock"


# ---------------------------------------------------------------------------------------
# Lock files


class LockFileMeta:
    """One lock file: who asked, when, for which kind of access, and at which stage."""

    __slots__ = ("db_name", "folder", "mode", "nonce", "order", "pid", "stage", "tid", "token")

    def __init__(  # noqa: PLR0913, PLR0917 - one field per part of the lock file name
        self,
        db_name: str,
        folder: str,
        order: int,
        pid: int,
        token: str,
        tid: int,
        nonce: str,
        stage: str,
        mode: str,
    ) -> None:
        self.db_name = db_name
        self.folder = folder
        self.order = order
        self.pid = pid
        self.token = token
        self.tid = tid
        self.nonce = nonce
        self.stage = stage
        self.mode = mode

    @property
    def filename(self) -> str:
        return f"{self.order:020d}.{self.pid}.{self.token}.{self.tid}.{self.nonce}.{self.stage}.{self.mode}{_SUFFIX}"

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.filename)

    @property
    def id(self) -> str:
        return f"{self.pid}.{self.tid}"

    @property
    def time_ns(self) -> int:
        """The request time (``time.monotonic_ns`` of the requester's host)."""
        return self.order

    @property
    def rank(self) -> Tuple[int, int, int, str]:
        """Total order of requests: request time, then pid, thread and nonce break ties."""
        return (self.order, self.pid, self.tid, self.nonce)

    def with_stage(self, stage: str) -> LockFileMeta:
        return LockFileMeta(
            self.db_name,
            self.folder,
            self.order,
            self.pid,
            self.token,
            self.tid,
            self.nonce,
            stage,
            self.mode,
        )

    @classmethod
    def parse(cls, db_name: str, folder: str, filename: str) -> Optional[LockFileMeta]:
        """Read a lock file name; ``None`` for anything that is not one."""
        if not filename.endswith(_SUFFIX):
            return None
        parts = filename[: -len(_SUFFIX)].split(".")
        if len(parts) != 7 or parts[5] not in (NEED, HAS) or parts[6] not in (READ, WRITE):
            return None
        try:
            return cls(
                db_name,
                folder,
                int(parts[0]),
                int(parts[1]),
                parts[2],
                int(parts[3]),
                parts[4],
                parts[5],
                parts[6],
            )
        except ValueError:
            return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockFileMeta) and (self.folder, self.filename) == (
            other.folder,
            other.filename,
        )

    def __hash__(self) -> int:
        return hash((self.folder, self.filename))

    def __repr__(self) -> str:
        return (
            f"LockFileMeta(db={self.db_name!r}, {self.stage} {self.mode}, pid={self.pid}, thread={self.tid})"
        )


def _list_locks(db_name: str, folder: str) -> List[LockFileMeta]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    locks = [LockFileMeta.parse(db_name, folder, name) for name in names]
    return sorted((lock for lock in locks if lock is not None), key=lambda lock: lock.rank)


class FileLocksSnapshot:
    """The lock files of one database at one moment (a read-only view).

    Build it from any lock's metadata, e.g. ``FileLocksSnapshot(write_lock.need_lock)``.
    """

    def __init__(self, need_lock: LockFileMeta) -> None:
        self.db_name = need_lock.db_name
        self.folder = need_lock.folder
        #: every lock file, oldest request first; then holders of the kernel lock that have
        #: no lock file (sessions and writes), with thread 0 and request time 0
        self.locks: List[LockFileMeta] = _list_locks(self.db_name, self.folder)
        shown: Dict[int, int] = {}
        for lock in self.locks:
            if lock.stage == HAS:
                shown[lock.pid] = shown.get(lock.pid, 0) + 1
        for holder in _kernel_holders(self.db_name, self.folder):
            if shown.get(holder.pid, 0) > 0:
                shown[holder.pid] -= 1  # the same lock, already shown by its file
            else:
                self.locks.append(holder)

    @property
    def any_has_locks(self) -> bool:
        """Is any lock granted?"""
        return any(lock.stage == HAS for lock in self.locks)

    @property
    def any_write_locks(self) -> bool:
        """Is any write lock requested or granted?"""
        return any(lock.mode == WRITE for lock in self.locks)

    @property
    def any_has_write_locks(self) -> bool:
        """Is a write lock granted?"""
        return any(lock.stage == HAS and lock.mode == WRITE for lock in self.locks)

    def exists(self, lock: LockFileMeta) -> bool:
        return lock in self.locks

    def __len__(self) -> int:
        return len(self.locks)

    def __repr__(self) -> str:
        return f"FileLocksSnapshot(db={self.db_name!r}, locks={self.locks!r})"


# ---------------------------------------------------------------------------------------
# The gate, lock-file reuse, and wake-ups


_gates_lock = threading.Lock()
#: private folder -> (open folder fd, thread lock): one gate handle per folder and process
_gates: Dict[str, Tuple[int, threading.Lock]] = {}
_MAX_CACHED_GATES = 64


def _open_folder(folder: str) -> int:
    flags = os.O_RDONLY | utils.O_CLOEXEC
    try:
        return os.open(folder, flags)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return os.open(folder, flags)


def _gate_handle(folder: str, *, verify: bool = True) -> Tuple[int, threading.Lock]:
    """The cached gate descriptor of ``folder`` and its thread lock.

    ``verify`` makes sure the folder was not deleted meanwhile (a lock holder skips that:
    its commit guard finds its kernel file unlinked anyway).
    """
    handle = _gates.get(folder)
    if handle is not None and (not verify or os.fstat(handle[0]).st_nlink > 0):
        return handle
    with _gates_lock:
        handle = _gates.get(folder)
        if handle is not None and os.fstat(handle[0]).st_nlink == 0:
            handle = None  # the folder was deleted (and maybe recreated): reopen it
        if handle is None:
            fd = _open_folder(folder)
            utils.track_lock_fd(fd)
            handle = (fd, threading.Lock())
            if len(_gates) < _MAX_CACHED_GATES:
                _gates[folder] = handle
    return handle


def _gate_acquire(
    folder: str, deadline: float, db_name: str, *, verify: bool = True
) -> Tuple[int, threading.Lock]:
    """Take the gate of a database's private folder: a kernel lock held for a few system
    calls. Release it with :func:`_gate_release`.

    ``flock`` only excludes other open file descriptions, so the threads of this process,
    which share one cached descriptor, also take a thread lock.
    """
    handle = _gate_handle(folder, verify=verify)
    fd, thread_lock = handle
    if not thread_lock.acquire(False) and not thread_lock.acquire(
        timeout=max(0.0, deadline - time.monotonic())
    ):
        raise LockError(_gate_timeout_message(db_name))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # usually free: it is held briefly
        except BlockingIOError:
            _flock_until(fd, deadline, db_name)
    except BaseException:
        _gate_release(folder, fd, thread_lock, locked=False)
        raise
    return handle


def _gate_release(folder: str, fd: int, thread_lock: threading.Lock, *, locked: bool = True) -> None:
    try:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        thread_lock.release()
        if _gates.get(folder, (None,))[0] != fd:  # not cached: close it
            utils.untrack_lock_fd(fd)
            os.close(fd)


@contextlib.contextmanager
def _gate(folder: str, deadline: float, db_name: str) -> Iterator[None]:
    """Hold the gate of a database's private folder (see :func:`_gate_acquire`)."""
    fd, thread_lock = _gate_acquire(folder, deadline, db_name)
    try:
        yield
    finally:
        _gate_release(folder, fd, thread_lock)


def _gate_timeout_message(db_name: str) -> str:
    return (
        f"Timed out waiting for the lock folder of database {db_name!r}: another process holds "
        "it and does not let go (is it stopped in a debugger or by SIGSTOP?)"
    )


#: How long a gate request yields the processor before it starts to sleep (seconds).
_GATE_YIELD_SECONDS = 0.0002


def _flock_until(fd: int, deadline: float, db_name: str) -> None:
    """Take the gate's ``flock``, which others hold for a few system calls (or one commit).

    The shortest sleep the kernel offers is longer than most such holds, so the request
    first gives the processor away (``sched_yield``; the holder or another process runs)
    for up to ``_GATE_YIELD_SECONDS``, and only then sleeps with capped backoff.
    """
    yield_until = time.monotonic() + _GATE_YIELD_SECONDS
    delay = 0.00005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            now = time.monotonic()
            if now >= deadline:
                raise LockError(_gate_timeout_message(db_name)) from None
            if now < yield_until and hasattr(os, "sched_yield"):
                os.sched_yield()
                continue
            time.sleep(delay)
            delay = min(delay * 2, 0.0005)


#: (private folder, thread id) -> this thread's parked lock file in that folder
_parked: Dict[Tuple[str, int], str] = {}


def _parked_name(folder: str, tid: int) -> str:
    return os.path.join(folder, f"parked.{os.getpid()}.{utils.own_process_token()}.{tid}")


def _claim_lock_file(folder: str, tid: int, path: str) -> None:
    """Make the lock file ``path`` exist, reusing this thread's parked file if it has one.

    A rename costs a fraction of creating a file, so a released lock file is parked (renamed
    to ``parked.<pid>.<token>.<tid>``) and renamed back into service by the next request.
    """
    parked = _parked.pop((folder, tid), None)
    if parked is not None:
        try:
            os.rename(parked, path)
            return
        except FileNotFoundError:
            pass  # swept as the leftover of a dead process? Create a new one.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | utils.O_CLOEXEC, 0o644)
    os.close(fd)


def _park_lock_file(folder: str, tid: int, path: str) -> bool:
    """Retire a lock file by parking it for reuse; ``False`` if it was already gone."""
    parked = _parked_name(folder, tid)
    try:
        os.rename(path, parked)
    except FileNotFoundError:
        return False
    _parked[(folder, tid)] = parked
    return True


def _wake_channel(folder: str, pid: int, tid: int) -> str:
    return os.path.join(folder, f"wake.{pid}.{tid}")


#: Wake-up FIFOs this process has opened (they stay for reuse until the process exits).
_wake_channels: set = set()


def _open_wake_channel(folder: str, tid: int) -> int:
    """Open this thread's wake-up FIFO for waiting (read and write, so it never reports EOF)."""
    path = _wake_channel(folder, os.getpid(), tid)
    _wake_channels.add(path)
    for _ in range(2):
        try:
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | utils.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
        except OSError:
            break
    return -1  # no FIFOs here: the waiter just polls


def _wait_for_wake(fd: int, timeout: float) -> None:
    if fd < 0 or not hasattr(select, "poll"):
        time.sleep(timeout)
        return
    # poll, not select: select fails for descriptors above 1023.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if poller.poll(timeout * 1000):
        with contextlib.suppress(OSError):
            os.read(fd, 4096)


_presence_probes: Dict[str, int] = {}

# Waiters show their presence with a shared lock on the folder's ``waiting`` file, and a
# releaser tests for one. Where the kernel has open-file-description record locks (64-bit
# Linux), that test is one ``fcntl(F_OFD_GETLK)``; with ``flock`` it takes a lock and an
# unlock. The two kinds of lock do not see each other, so every process picks the same one:
# record locks where the platform has them, unless the file system refuses them (then all
# processes fall back to ``flock`` on that file).
_USE_RECORD_LOCKS = sys.platform.startswith("linux") and sys.maxsize > 2**32
_F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)


def _record(lock_type: int) -> bytes:
    """A ``struct flock`` (64-bit Linux layout) covering the whole file; pid 0, as OFD locks need."""
    return struct.pack("hhqqi4x", lock_type, os.SEEK_SET, 0, 0, 0)


_READ_RECORD = _record(fcntl.F_RDLCK)
_WRITE_RECORD = _record(fcntl.F_WRLCK)
_UNLOCKED_TYPE = struct.pack("h", fcntl.F_UNLCK)


def _presence_path(folder: str) -> str:
    return os.path.join(folder, "waiting")


def _open_presence_file(folder: str) -> int:
    """Open (creating it) the folder's ``waiting`` file; the descriptor is tracked, since it
    will hold a kernel lock. Raises ``OSError`` (``FileNotFoundError``: no folder)."""
    fd = os.open(_presence_path(folder), os.O_RDWR | os.O_CREAT | utils.O_CLOEXEC, 0o644)
    utils.track_lock_fd(fd)
    return fd


def _announce_waiting(folder: str) -> int:
    """Hold a shared lock on the folder's ``waiting`` file while this thread waits.

    Releasers test it (:func:`_anyone_waiting`) and skip listing the folder when nobody
    waits. Returns the descriptor to close when done (-1 if it did not work, in which case
    the waiter still polls).
    """
    try:
        fd = _open_presence_file(folder)
    except OSError:
        return -1
    if _USE_RECORD_LOCKS:
        try:
            fcntl.fcntl(fd, _F_OFD_SETLK, _READ_RECORD)  # nobody takes it exclusively: no wait
            return fd
        except OSError:
            pass  # a file system without record locks: use flock, as releasers then do
    for _ in range(3):
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.0001)  # a releaser is probing right now
        except OSError:
            break
    utils.untrack_lock_fd(fd)
    os.close(fd)
    return -1


def _anyone_waiting(folder: str) -> bool:
    """Does any thread of any process wait for a lock of this database right now?"""
    fd = _presence_probes.get(folder)
    cached = fd is not None
    if fd is None:
        try:
            fd = _open_presence_file(folder)
        except FileNotFoundError:
            return False  # no private folder yet: nobody can be waiting
        except OSError:
            return True
        if len(_presence_probes) < _MAX_CACHED_GATES:
            _presence_probes[folder] = fd
            cached = True
    try:
        if _USE_RECORD_LOCKS:
            try:
                # The kernel reports the first lock that would conflict with a write lock.
                return fcntl.fcntl(fd, _F_OFD_GETLK, _WRITE_RECORD)[:2] != _UNLOCKED_TYPE
            except OSError:
                pass  # a file system without record locks: waiters use flock there
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        if not cached:
            utils.untrack_lock_fd(fd)
            os.close(fd)


def _wake_next(folder: str, db_name: str) -> None:
    """Wake the waiters that may now be granted: the earliest request, and if it is a read,
    every read request before the next write request."""
    if not _anyone_waiting(folder):
        return
    waiting = [lock for lock in _list_locks(db_name, folder) if lock.stage == NEED]
    for lock in waiting:
        if lock.mode == WRITE and lock is not waiting[0]:
            break
        try:
            fd = os.open(_wake_channel(folder, lock.pid, lock.tid), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue  # it is not waiting on its channel right now (or has none): it polls
        try:
            os.write(fd, b"!")
        except OSError:
            pass
        finally:
            os.close(fd)
        if lock.mode == WRITE:
            break


def _remove_own_leftovers() -> None:
    """At exit: remove this process's parked lock files and wake channels (best effort).

    They are kept while the process runs, for reuse; a process that is killed leaves them,
    and waiters sweep those now and then (:func:`_sweep_dead_leftovers_now_and_then`).
    """
    for path in list(_parked.values()) + list(_wake_channels):
        with contextlib.suppress(OSError):
            os.unlink(path)
    _parked.clear()
    _wake_channels.clear()


atexit.register(_remove_own_leftovers)

#: private folder -> when this process last swept it for leftovers of dead processes
_last_sweeps: Dict[str, float] = {}
#: Seconds between two sweeps of one folder by one process.
_SWEEP_INTERVAL = 10.0


def _sweep_dead_leftovers_now_and_then(folder: str) -> None:
    """Sweep the folder (:func:`_sweep_dead_leftovers`) if this process has not done so in
    the last ``_SWEEP_INTERVAL`` seconds. Waiters call it: they list the folder on every try,
    and leftovers of killed processes would make every listing longer."""
    now = time.monotonic()
    last = _last_sweeps.get(folder)
    if last is not None and now - last < _SWEEP_INTERVAL:
        return
    if len(_last_sweeps) >= 4096:
        _last_sweeps.clear()
    _last_sweeps[folder] = now
    _sweep_dead_leftovers(folder)


def _sweep_dead_leftovers(folder: str) -> None:
    """Remove parked lock files and wake channels of processes that are gone."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split(".")
        if parts[0] == "parked" and len(parts) == 4 and parts[1].isdigit():
            alive = utils.process_is_alive(int(parts[1]), parts[2])
        elif parts[0] in ("wake", "kernel") and len(parts) >= 3 and parts[1].isdigit():
            alive = utils.process_start_token(int(parts[1])) is not None
        else:
            continue
        if not alive:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


# ---------------------------------------------------------------------------------------
# Per-process bookkeeping: held locks and the lease keeper


_registry_lock = threading.Lock()
#: (private folder, thread id) -> the lock that thread holds on that database. A thread
#: only ever adds and removes its own keys, and each of those is one dict operation (atomic
#: in CPython), so they take no lock; ``_registry_lock`` guards copying the values.
_held: Dict[Tuple[str, int], AbstractLock] = {}


def held_lock(db_name: str) -> Optional[AbstractLock]:
    """The lock the current thread holds on ``db_name``, if any."""
    return _held.get((utils.private_dir(db_name), threading.get_ident()))


def held_lock_of(files: utils.DbFiles) -> Optional[AbstractLock]:
    """:func:`held_lock` for a database whose paths the caller has at hand."""
    return _held.get((files.private, threading.get_ident()))


class _LeaseKeeper:
    """One daemon thread per process that refreshes the leases of all held locks.

    It sleeps on an event while no lock is held, so an idle process costs nothing.
    """

    def __init__(self) -> None:
        self._wake = threading.Event()
        #: the keeper thread, once started
        self.thread: Optional[threading.Thread] = None
        #: True while the keeper waits for a lock to be taken (then it needs waking)
        self.idle = True

    def start(self) -> None:
        """Start the keeper thread (callers check ``thread`` first). Called before a lock is
        taken: starting a thread takes a few hundred microseconds, which a lock holder would
        make others wait."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="dictdatabase-lease-keeper", daemon=True)
            self.thread.start()

    def wake(self) -> None:
        """Called after a lock was taken while the keeper was ``idle``. (Only an idle keeper
        needs waking; waking it on every lock would cost a thread switch per lock.)"""
        self._wake.set()

    def _run(self) -> None:
        while True:
            # Mark idle *before* looking, so that a lock registered meanwhile either is seen
            # here or finds the keeper idle and wakes it.
            self.idle = True
            with _registry_lock:
                locks = list(_held.values())
            if not locks:
                self._wake.wait()
                self._wake.clear()
            self.idle = False
            # Sleep before refreshing: most locks are released long before, and a keeper
            # that looked at once would wake up for every lock taken (a thread switch each).
            # A new lock is refreshed within two intervals, half the orphan timeout.
            time.sleep(min(LOCK_KEEP_ALIVE_TIMEOUT, REMOVE_ORPHAN_LOCK_TIMEOUT / 4))
            with _registry_lock:
                locks = list(_held.values())
            for lock in locks:
                lock._refresh_lease()  # noqa: SLF001 - the keeper is part of the lock machinery


_keeper = _LeaseKeeper()


def _forget_parent_locks() -> None:
    """In a child made by fork, nothing the parent held belongs to this process.

    (The descriptors of cached gates are closed by ``utils`` in the child.)
    """
    global _registry_lock, _keeper, _gates_lock  # noqa: PLW0603 - rebuilt once per forked child
    _registry_lock = threading.Lock()
    _gates_lock = threading.Lock()
    _held.clear()
    _gates.clear()
    _parked.clear()  # the parent's: the parent removes them
    _wake_channels.clear()
    _last_sweeps.clear()
    _kernel_fds.clear()
    _presence_probes.clear()
    _keeper = _LeaseKeeper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_locks)


# ---------------------------------------------------------------------------------------
# The kernel lock: what actually excludes


#: (private folder, thread id) -> this thread's open descriptor of the folder's kernel lock
_kernel_fds: Dict[Tuple[str, int], int] = {}
_MAX_CACHED_KERNEL_FDS = 128


def _kernel_path(folder: str) -> str:
    return os.path.join(folder, utils.KERNEL_LOCK_FILE)


def _open_kernel_file(folder: str) -> int:
    path = _kernel_path(folder)
    flags = os.O_RDWR | os.O_CREAT | utils.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    utils.track_lock_fd(fd)
    return fd


def _kernel_fd(key: Tuple[str, int]) -> int:
    """The descriptor of the kernel lock for ``key`` = (private folder, thread id): ``flock``
    excludes open descriptions, so every thread needs its own."""
    fd = _kernel_fds.get(key)
    if fd is None:
        fd = _open_kernel_file(key[0])
        if len(_kernel_fds) < _MAX_CACHED_KERNEL_FDS:
            _kernel_fds[key] = fd
    return fd


def _drop_kernel_fd(key: Tuple[str, int], fd: int) -> None:
    """Close a descriptor that is not cached, or whose file was replaced."""
    if _kernel_fds.get(key) == fd:
        del _kernel_fds[key]
    _close_kernel_fd(fd)


def _close_kernel_fd(fd: int) -> None:
    utils.untrack_lock_fd(fd)
    os.close(fd)


_TRY_EXCLUSIVE = fcntl.LOCK_EX | fcntl.LOCK_NB
_TRY_SHARED = fcntl.LOCK_SH | fcntl.LOCK_NB


def _try_kernel(lock: AbstractLock) -> bool:
    """Take the kernel ``flock`` of ``lock`` without waiting; ``True`` on success.

    A kernel lock file whose lease was broken is replaced by a new file; a descriptor of the
    old one (link count 0) is dropped and the new file locked instead.
    """
    operation = _TRY_EXCLUSIVE if lock.mode == WRITE else _TRY_SHARED
    key = (lock.folder, lock._tid)  # noqa: SLF001 - same module
    for _ in range(3):
        fd = _kernel_fd(key)
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            if os.fstat(fd).st_nlink > 0:
                if _kernel_fds.get(key) != fd:
                    _close_kernel_fd(fd)  # not cached: done with it
                return False
            _drop_kernel_fd(key, fd)
            continue  # busy, but only the broken old file: try the new one
        stat = os.fstat(fd)
        if stat.st_nlink > 0:
            lock._kernel = fd  # noqa: SLF001 - same module
            lock._spare = _spare_path(lock.folder, stat.st_ino)  # noqa: SLF001 - same module
            lock.leftovers = stat.st_size > 0
            if lock.leftovers:
                # Temporary files were made since the mark was last cleared: remove those
                # whose owner died (a writer killed before its rename leaves one).
                utils.sweep_dead_temp_files(lock.folder)
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        _drop_kernel_fd(key, fd)
    return False


def _spare_path(folder: str, kernel_inode: int) -> str:
    """The spare file that holders of the kernel lock file ``kernel_inode`` write through.

    It is named after that file, so that breaking a lease can take it away from the old
    holder for good (see :func:`_break_kernel_lock` and ``io_bytes._exchange_own_spare``).
    """
    key = (folder, kernel_inode)
    path = _spare_paths.get(key)
    if path is None:
        if len(_spare_paths) >= _MAX_CACHED_KERNEL_FDS:
            _spare_paths.clear()
        path = _spare_paths[key] = os.path.join(folder, f"{utils.SPARE_FILE}.{kernel_inode}")
    return path


#: (private folder, kernel file inode) -> the spare path of its holders
_spare_paths: Dict[Tuple[str, int], str] = {}


def _break_kernel_lock(folder: str) -> None:
    """Replace the kernel lock file (under the gate): holders of the old one are fenced.

    First the old holders' spare file goes: their commits exchange it with the data file
    without the gate, and an exchange of a name that no longer exists fails. It is never
    made again, because a spare is only created under the gate by a holder whose kernel
    file is still linked. Then the kernel file is replaced; a holder of the old one finds
    it unlinked when it takes the gate to commit. The new file carries the leftovers mark
    (``utils.mark_leftovers``): whatever the broken holder left behind is looked for by the
    next writer.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_spare_path(folder, os.stat(_kernel_path(folder)).st_ino))
    fresh = os.path.join(folder, f"kernel.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | utils.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, 1)
    finally:
        os.close(fd)
    os.replace(fresh, _kernel_path(folder))


def _kernel_holders(db_name: str, folder: str) -> List[LockFileMeta]:
    """Holders of the kernel lock, from ``/proc/locks`` (Linux); others report nobody.

    Sessions and writes hold only the kernel lock (no lock file), so a snapshot adds them
    from here: with pid and mode, but thread 0 and request time 0, which are not recorded.
    """
    try:
        stat = os.stat(_kernel_path(folder))
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    # The kernel writes the file as "major:minor:inode", the device numbers in hex.
    file_id = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->" after "1:"
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != file_id:
            continue
        mode = WRITE if fields[3] == "WRITE" else READ
        pid = int(fields[4]) if fields[4].isdigit() else 0
        holders.append(LockFileMeta(db_name, folder, 0, pid, "", 0, "kernel", HAS, mode))
    return holders


# ---------------------------------------------------------------------------------------
# Locks


class AbstractLock:
    """A read or write lock on one database; use it as a context manager.

    What excludes is a kernel ``flock`` on the database's ``kernel`` file (shared for reads,
    exclusive for writes): the kernel drops it when a process dies, and hands it over fast.
    Around it runs the lock-file protocol of the module docstring: requests that must wait
    are queued in order as ``need`` files, and a lock taken through this API shows as a
    ``has`` file (``visible``). Locks the library takes for sessions and writes are not
    visible as files; :class:`FileLocksSnapshot` reports them from the kernel's lock table.

    ``need_lock`` and ``has_lock`` describe the lock files of the current (or next) request.
    """

    mode = ""
    # The defaults of the per-lock state are class attributes: a lock is made for every
    # operation, so the constructor only sets what differs from lock to lock.
    held = False
    #: True when this lock was taken for a session (sessions cannot nest on one database)
    for_session = False
    #: whether the held lock shows as a ``has`` file (internal locks set this to False)
    visible = True
    #: whether the folder was marked as maybe holding leftovers (``utils.mark_leftovers``)
    #: when this lock was taken: a writer then looks for a journal to finish
    leftovers = False
    #: the descriptor of the kernel lock file while held
    _kernel = -1
    #: the spare file of this lock's kernel file (set when the lock is taken)
    _spare = ""
    #: the current request: when it was made (monotonic ns), by which thread, its lock files
    _order = 0
    _tid = 0
    _metas: Optional[Tuple[LockFileMeta, LockFileMeta]] = None

    def __init__(self, db_name: str) -> None:
        files = utils.db_files(db_name)
        self.db_name = files.name
        self.folder = files.private
        self._new_request()

    @classmethod
    def internal(cls, files: utils.DbFiles, *, for_session: bool) -> AbstractLock:
        """A lock the library takes for its own operations (not yet held, its request is
        made by ``_lock()``): it shows as no lock file (``visible`` is False), only in the
        kernel's lock table."""
        lock = cls.__new__(cls)
        lock.db_name = files.name
        lock.folder = files.private
        lock.visible = False
        lock.for_session = for_session
        return lock

    def _new_request(self) -> None:
        self._order = time.monotonic_ns()
        self._tid = threading.get_ident()
        self._metas = None

    def _request_files(self) -> Tuple[LockFileMeta, LockFileMeta]:
        metas = self._metas
        if metas is None:
            need = LockFileMeta(
                self.db_name,
                self.folder,
                self._order,
                os.getpid(),
                utils.own_process_token(),
                self._tid,
                f"{random.getrandbits(32):08x}",
                NEED,
                self.mode,
            )
            metas = self._metas = (need, need.with_stage(HAS))
        return metas

    @property
    def need_lock(self) -> LockFileMeta:
        """The lock file of the current request while it waits."""
        return self._request_files()[0]

    @property
    def has_lock(self) -> LockFileMeta:
        """The lock file of the current request once granted."""
        return self._request_files()[1]

    # -- acquiring ---------------------------------------------------------------------

    def _lock(self) -> None:
        """Take the lock, waiting at most ``AQUIRE_LOCK_TIMEOUT`` seconds."""
        key = (self.folder, threading.get_ident())
        current = _held.get(key)
        if current is not None:
            raise LockError(_nested_message(self, current))
        self._new_request()
        keeper = _keeper
        if keeper.thread is None:
            keeper.start()
        # The library's own locks first try without queueing (see _barge). Visible locks
        # always queue, which also clears lock files of dead owners.
        if self.visible or not ((not _anyone_waiting(self.folder) and _try_kernel(self)) or self._barge()):
            waiting = _Waiter(self, self._deadline)
            try:
                waiting.run()
            finally:
                waiting.close()
        self.held = True
        _held[key] = self
        if keeper.idle:
            keeper.wake()

    def clear_leftovers(self) -> None:
        """Clear the leftovers mark, once the holder has cleaned up (under a write lock)."""
        if self.held and self.leftovers:
            os.ftruncate(self._kernel, 0)
            self.leftovers = False

    @property
    def _deadline(self) -> float:
        """When the current request gives up (``AQUIRE_LOCK_TIMEOUT`` after it was made)."""
        return self._order / 1e9 + AQUIRE_LOCK_TIMEOUT

    def _barge(self) -> bool:
        """After a first try failed: retry to take the kernel lock without queueing while
        nobody has waited longer than ``FAIRNESS_WINDOW``; ``True`` if that worked.

        Polls with capped backoff; requests older than the window queue up (and then stop
        everybody else from barging past them), so nobody waits long for its turn.
        """
        window_end = min(self._order / 1e9 + FAIRNESS_WINDOW, self._deadline)
        delay = SLEEP_TIMEOUT
        while True:
            pause = min(delay, window_end - time.monotonic())
            if pause <= 0:
                return False
            time.sleep(pause * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not secrets
            delay = min(delay * 2, MAX_SLEEP_TIMEOUT)
            if not _anyone_waiting(self.folder) and _try_kernel(self):
                return True

    def _unlock(self) -> None:
        """Release the lock (idempotent). Logs a warning if the lease had been broken."""
        if not self.held:
            return
        self.held = False
        key = (self.folder, self._tid)
        if _held.get(key) is self:
            del _held[key]
        broken = self.visible and not _park_lock_file(self.folder, self._tid, self.has_lock.path)
        fd, self._kernel = self._kernel, -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        if _kernel_fds.get(key) != fd:
            _close_kernel_fd(fd)  # not this thread's cached descriptor
        if broken:
            utils.logger.warning(
                "The %s lock of database %r had been broken by another process", self.mode, self.db_name
            )
        _wake_next(self.folder, self.db_name)

    def _refresh_lease(self) -> None:
        """Show that the owner is alive: bump the mtime of the kernel file (and lock file)."""
        fd = self._kernel
        if not self.held or fd < 0:
            return
        try:
            os.utime(fd)
            if self.visible:
                os.utime(self.has_lock.path)
        except OSError:
            utils.logger.warning(
                "The %s lock of database %r was broken (its lease had expired)", self.mode, self.db_name
            )

    # -- fencing -----------------------------------------------------------------------

    def commit_guard(self) -> ContextManager[None]:
        """Hold the gate and make sure this lock is still ours; raise ``LockError`` if not.

        Everything done inside (a rename, an in-place write) cannot race with a waiter
        breaking the lock, because breaking also needs the gate.
        """
        return _CommitGuard(self)

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> AbstractLock:
        self._lock()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._unlock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db_name!r}, held={self.held})"


class _CommitGuard:
    """The context manager of :meth:`AbstractLock.commit_guard` (a class: commits are hot).

    ``spare`` names the spare file of a held write lock: a commit that only exchanges that
    spare with the data file needs no gate (see ``io_bytes._exchange_own_spare``).
    """

    __slots__ = ("_gate", "_lock", "spare")

    def __init__(self, lock: AbstractLock) -> None:
        self._lock = lock
        self._gate: Optional[Tuple[int, threading.Lock]] = None
        self.spare: Optional[str] = lock._spare if lock.held and lock.mode == WRITE else None  # noqa: SLF001 - part of the lock

    def __enter__(self) -> None:
        lock = self._lock
        if not lock.held:
            msg = f"The {lock.mode} lock of database {lock.db_name!r} is not held; nothing was written"
            raise LockError(msg)
        gate = _gate_acquire(lock.folder, time.monotonic() + AQUIRE_LOCK_TIMEOUT, lock.db_name, verify=False)
        if os.fstat(lock._kernel).st_nlink == 0:  # noqa: SLF001 - part of the lock
            _gate_release(lock.folder, *gate)
            msg = (
                f"Lost the {lock.mode} lock of database {lock.db_name!r}: another process broke it "
                f"after its lease was not refreshed for {REMOVE_ORPHAN_LOCK_TIMEOUT} s (was this process "
                "paused?). Nothing was written; read the data again and retry"
            )
            raise LockError(msg)
        self._gate = gate

    def __exit__(self, *exc_info: object) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            _gate_release(self._lock.folder, *gate)


class ReadLock(AbstractLock):
    """A shared lock: many readers may hold it at once, never together with a writer."""

    mode = READ


class WriteLock(AbstractLock):
    """An exclusive lock: one holder, no readers."""

    mode = WRITE


def _nested_message(wanted: AbstractLock, current: AbstractLock) -> str:
    if wanted.mode == current.mode:
        what = f"a second {wanted.mode} lock"
    else:
        what = f"a {wanted.mode} lock while holding a {current.mode} lock"
    return (
        f"This thread asked for {what} on database {wanted.db_name!r}; that would deadlock. "
        "Use the lock (or session) it already holds"
    )


class _Waiter:
    """The wait loop of one lock request that found the lock busy or others queued."""

    def __init__(self, lock: AbstractLock, deadline: float) -> None:
        self.lock = lock
        self.deadline = deadline
        self.need_created = False
        self.bell_fd = -1
        self.presence_fd = -1
        #: lease file (a lock file, or the kernel file) -> (its (inode, mtime_ns) last seen,
        #: when that was first seen, when last sampled); see :meth:`_lease_age`
        self.leases: Dict[str, Tuple[Tuple[int, int], float, float]] = {}
        #: lock file name -> when this waiter first saw it blocking
        self.first_seen: Dict[str, float] = {}
        self.blockers: List[LockFileMeta] = []
        self.need_touched = 0.0

    def run(self) -> None:
        _sweep_dead_leftovers_now_and_then(self.lock.folder)
        delay = SLEEP_TIMEOUT
        while True:
            if self._try_take():
                return
            if time.monotonic() >= self.deadline:
                raise LockError(self._timeout_message())
            if self.bell_fd < 0:
                # Listen and show presence, then look once more at once: a release after
                # that look wakes us.
                self.bell_fd = _open_wake_channel(self.lock.folder, self.lock._tid)  # noqa: SLF001 - part of the lock
                self.presence_fd = _announce_waiting(self.lock.folder)
                continue
            self._touch_need()
            pause = min(delay, max(0.0, self.deadline - time.monotonic())) * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not secrets
            _wait_for_wake(self.bell_fd, pause)
            delay = min(delay * 2, MAX_SLEEP_TIMEOUT)

    def _try_take(self) -> bool:
        lock = self.lock
        with _gate(lock.folder, self.deadline, lock.db_name):
            need = lock.need_lock
            listing = _list_locks(lock.db_name, lock.folder)
            need_present = self.need_created and need in listing
            queued = [other for other in listing if other.stage == NEED and other != need]
            self.blockers = self._remove_orphans(self._blockers(queued))
            if not self.blockers and (_try_kernel(lock) or self._break_expired_kernel_lock(listing)):
                self._granted(need_present, listing)
                return True
            if self.need_created and not need_present:
                # Our request was removed as stale while this process was paused: ask again.
                lock._new_request()  # noqa: SLF001 - the waiter is part of the lock
            if not need_present:
                _claim_lock_file(lock.folder, lock._tid, lock.need_lock.path)  # noqa: SLF001 - part of the lock
                self.need_created = True
                self.need_touched = time.monotonic()
            return False

    def _granted(self, need_present: bool, listing: List[LockFileMeta]) -> None:
        """The kernel lock is ours (under the gate): turn the request into the held lock."""
        lock = self.lock
        if need_present:
            if lock.visible:
                os.rename(lock.need_lock.path, lock.has_lock.path)
            else:
                _park_lock_file(lock.folder, lock._tid, lock.need_lock.path)  # noqa: SLF001 - part of the lock
        elif lock.visible:
            _claim_lock_file(lock.folder, lock._tid, lock.has_lock.path)  # noqa: SLF001 - part of the lock
        self.need_created = False
        # A fresh lease: a waiter behind us measures it from here, not from an older holder.
        with contextlib.suppress(OSError):
            os.utime(lock._kernel)  # noqa: SLF001 - part of the lock
        # Lock files of holders that cannot hold the kernel lock alongside us are leftovers
        # of dead processes (or of broken leases).
        stale = [o for o in listing if o.stage == HAS and WRITE in (lock.mode, o.mode)]
        for other in stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other.path)
        if stale:
            utils.sweep_dead_temp_files(lock.folder)
            _sweep_dead_leftovers(lock.folder)

    def _break_expired_kernel_lock(self, listing: List[LockFileMeta]) -> bool:
        """Break the kernel lock if its lease expired (under the gate); ``True`` if we then
        got it. Its holder is alive (the kernel frees locks of dead processes) but was not
        seen refreshing for ``REMOVE_ORPHAN_LOCK_TIMEOUT`` seconds: paused, or stopped."""
        kernel_path = _kernel_path(self.lock.folder)
        age = self._lease_age(kernel_path, time.monotonic())
        if age is None or age < REMOVE_ORPHAN_LOCK_TIMEOUT:
            return False
        _break_kernel_lock(self.lock.folder)
        del self.leases[kernel_path]
        utils.logger.warning(
            "Broke the lock of database %r: its lease was not refreshed for %s s",
            self.lock.db_name,
            REMOVE_ORPHAN_LOCK_TIMEOUT,
        )
        for other in listing:
            if other.stage == HAS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(other.path)
        return _try_kernel(self.lock)

    def _blockers(self, others: List[LockFileMeta]) -> List[LockFileMeta]:
        """Earlier conflicting requests that have waited at least ``FAIRNESS_WINDOW``
        seconds (younger ones may be overtaken). Holders are the kernel lock's business."""
        mine = self.lock.need_lock
        oldest_order = time.monotonic_ns() - int(FAIRNESS_WINDOW * 1e9)

        def blocks(other: LockFileMeta) -> bool:
            return other.rank < mine.rank and other.order <= oldest_order

        if mine.mode == WRITE:
            return [o for o in others if blocks(o)]
        return [o for o in others if o.mode == WRITE and blocks(o)]

    def _remove_orphans(self, blockers: List[LockFileMeta]) -> List[LockFileMeta]:
        """Drop blockers whose owner is gone or whose lease expired.

        Checks cost system calls, so a blocker is first given ``ORPHAN_CHECK_DELAY``
        seconds (a live owner usually releases sooner) and its lease is sampled at most
        every ``_LEASE_SAMPLE`` seconds.
        """
        alive = []
        removed_dead = False
        now = time.monotonic()
        for other in blockers:
            first_seen = self.first_seen.setdefault(other.filename, now)
            reason = None
            if now - first_seen >= ORPHAN_CHECK_DELAY:
                if not utils.process_is_alive(other.pid, other.token):
                    reason = "its process is gone"
                else:
                    reason = self._lease_expired(other, now)
            if reason is None:
                alive.append(other)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other.path)
            removed_dead = True
            utils.logger.warning(
                "Removed the orphaned %s lock of database %r: %s", other.mode, other.db_name, reason
            )
        if removed_dead:
            utils.sweep_dead_temp_files(self.lock.folder)
            _sweep_dead_leftovers(self.lock.folder)
        return alive

    def _lease_expired(self, other: LockFileMeta, now: float) -> Optional[str]:
        age = self._lease_age(other.path, now)
        if age is not None and age >= REMOVE_ORPHAN_LOCK_TIMEOUT:
            return f"its lease was not refreshed for {REMOVE_ORPHAN_LOCK_TIMEOUT} s"
        return None

    def _lease_age(self, path: str, now: float) -> Optional[float]:
        """For how long, on this waiter's monotonic clock, the file at ``path`` has kept its
        inode and mtime (the lease its owner refreshes); ``None`` when not sampled now (at
        most every ``_LEASE_SAMPLE`` seconds, to save system calls) or the file is gone."""
        seen = self.leases.get(path)
        if seen is not None and now - seen[2] < _LEASE_SAMPLE:
            return None
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        current = (stat.st_ino, stat.st_mtime_ns)
        if seen is None or seen[0] != current:
            self.leases[path] = (current, now, now)
            return 0.0
        self.leases[path] = (current, seen[1], now)
        return now - seen[1]

    def _touch_need(self) -> None:
        if not self.need_created:
            return
        now = time.monotonic()
        if now - self.need_touched >= min(LOCK_KEEP_ALIVE_TIMEOUT, REMOVE_ORPHAN_LOCK_TIMEOUT / 4):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.lock.need_lock.path)
            self.need_touched = now

    def _timeout_message(self) -> str:
        lock = self.lock
        blocking = self.blockers or _kernel_holders(lock.db_name, lock.folder)
        holders = (
            ", ".join(f"pid {b.pid} thread {b.tid} ({b.stage} {b.mode})" for b in blocking)
            or "nobody visible"
        )
        return (
            f"Timed out after {AQUIRE_LOCK_TIMEOUT} s waiting for the {self.lock.mode} lock of database "
            f"{self.lock.db_name!r}; it is held or requested earlier by: {holders}. "
            "Locks of dead processes are removed automatically; a live holder must finish first"
        )

    def close(self) -> None:
        if self.need_created:
            _park_lock_file(self.lock.folder, self.lock._tid, self.lock.need_lock.path)  # noqa: SLF001 - part of the lock
            self.need_created = False
            _wake_next(self.lock.folder, self.lock.db_name)  # others may have waited behind us
        if self.bell_fd >= 0:
            os.close(self.bell_fd)
            self.bell_fd = -1
        if self.presence_fd >= 0:
            utils.untrack_lock_fd(self.presence_fd)
            os.close(self.presence_fd)
            self.presence_fd = -1
