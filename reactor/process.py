"""Child processes: ``reactor.spawnProcess`` and the process transport, on every backend.

A :class:`ProcessTransport` connects one child to a ``ProcessProtocol``::

    spawnProcess -> makeConnection [-> childDataReceived*] [-> childConnectionLost*]
                 -> processExited -> [childConnectionLost*] -> processEnded

``processExited`` comes when the child has exited (and been reaped);
``processEnded`` once it has exited *and* every pipe to it is closed, so all
of its output has been delivered. Both get ``Failure(ProcessDone(status))``
for exit code 0 and ``Failure(ProcessTerminated(exitCode=, signal=,
status=))`` otherwise. Every child is reaped: none is left a zombie.

What a child gets, as in Twisted:

- ``args`` is its whole ``argv``: ``args[0]`` is the name it sees, which need
  not be ``executable`` (empty ``args`` means ``[executable]``).
  ``executable`` without a slash is looked up in the ``PATH`` of ``env``, or
  the parent's ``PATH`` when ``env`` has none; a missing or non-executable
  file raises ``FileNotFoundError``/``PermissionError`` from ``spawnProcess``.
- ``env`` is its complete environment: a mapping is passed as it is (an empty
  one, Twisted's default, gives an empty environment), and ``None`` passes
  the parent's ``os.environ``.
- ``path`` is its working directory; ``uid``/``gid`` switch user and group
  (with the user's supplementary groups when we are root).
- ``childFDs`` maps each of its file descriptors to ``"r"`` (a pipe it writes
  and we read: ``childDataReceived``), ``"w"`` (a pipe it reads and we write:
  ``writeToChild``) or an int (one of *our* descriptors, which it inherits).
  The default is ``{0: "w", 1: "r", 2: "r"}``. Every descriptor not named is
  closed in the child, 0, 1 and 2 included.
- ``usePTY``: the child runs on a new pseudo-terminal (0, 1 and 2 are its
  slave side, and it is the controlling terminal of a new session); what it
  prints arrives as ``childDataReceived(1, ...)``.

How it is done. The pipes are ours on every backend (``os.pipe``, parent end
non-blocking, watched by the loop), so reading, writing, flow control and
closing behave the same everywhere. The child is started and reaped by:

- the selector reactor: ``subprocess.Popen`` (``vfork`` and ``exec`` in C: no
  Python runs in the child), then a *pidfd* (``os.pidfd_open``, Linux 5.3+)
  registered with the selector: it becomes readable when the child exits, and
  ``waitpid`` reaps exactly that child. No SIGCHLD handler and no global
  state, so several reactors may run children at once. Without pidfds the
  child is polled with ``waitpid(pid, WNOHANG)``, promptly when a SIGCHLD
  handler could be installed (see ``reactor._process_io._PolledChild``).
- the asyncio and uvloop reactors: the loop's own ``subprocess_exec`` (uvloop
  owns SIGCHLD; see ``reactor._aio_process``).

Some requests are beyond what ``Popen`` or the loop can express: a
descriptor above 2 that must land on a number other than its own, a stdio
descriptor to close, a PTY, ``uid``/``gid``, and on uvloop (libuv) an
``argv[0]`` other than the executable, or inheritable descriptors of ours to
keep from the child. The child then starts as a tiny Python trampoline
(``_TRAMPOLINE``: ``python -I -S -c``) that arranges exactly that and
``execve``s the real program, in the same process. It costs one interpreter
start-up (~15 ms), and only those requests pay it.

Differences from Twisted: on the asyncio backends the loop reports the new
child on a later loop turn, so there ``transport.pid`` is ``None`` until just
before ``makeConnection`` (which is then called from the loop, not from inside
``spawnProcess``; writes and signals made before it are kept, in order).
There ``status`` is rebuilt from the loop's return code (no core-dump bit).
Writes after ``closeStdin()`` are ignored, as on TCP transports. A child
reaped by someone else (a stray ``waitpid(-1)``) ends with
``ProcessTerminated(status=None)`` instead of never ending. ``signalProcess``
takes any signal name, not only Twisted's five.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from deferred import Failure
from reactor._process_io import (
    _PidfdChild,
    _Pipe,
    _PolledChild,
    _Poller,
    _PtyPipe,
    _ReadPipe,
    _WritePipe,
)
from reactor.error import ProcessDone, ProcessExitedAlready, ProcessTerminated

__all__ = ["ProcessTransport", "spawn_process"]

log = logging.getLogger("reactor")

_DEFAULT_CHILD_FDS: dict[int, str | int] = {0: "w", 1: "r", 2: "r"}

StrOrBytes = str | bytes
#: Twisted's default environment for a child: nothing at all.
_NO_ENV: Mapping[str, str] = MappingProxyType({})


def spawn_process(reactor: Any, processProtocol: Any, executable: StrOrBytes,
                  args: Sequence[StrOrBytes] = (), env: Mapping[Any, Any] | None = _NO_ENV,
                  path: StrOrBytes | None = None, uid: int | None = None,
                  gid: int | None = None, usePTY: Any = False,
                  childFDs: Mapping[int, str | int] | None = None) -> ProcessTransport:
    """Start ``executable`` as a child talking to ``processProtocol`` (see the module doc).

    Args:
        reactor: the reactor that watches the child (any backend).
        processProtocol: a ``ProcessProtocol``.
        executable: the program to run.
        args: its ``argv``, ``args[0]`` included.
        env: its environment: a mapping, or None for ``os.environ``.
        path: its working directory (None: ours).
        uid: run it as this user (needs privileges).
        gid: run it as this group (needs privileges).
        usePTY: run it on a new pseudo-terminal; True, or Twisted's
            ``(masterfd, slavefd, ttyname)`` to use an existing one.
        childFDs: its descriptors (see the module doc); not with ``usePTY``.

    Returns:
        The process transport (``pid``, ``write``, ``signalProcess``...).

    Raises:
        FileNotFoundError, PermissionError: ``executable`` cannot be run.
        ValueError: a malformed ``childFDs``, or ``childFDs`` with ``usePTY``.
        OSError: the system could not start the child.
    """
    if usePTY and childFDs is not None:
        raise ValueError("Using childFDs is not supported with usePTY=True.")
    plan = _Plan(executable, args, env, path, uid, gid, usePTY, childFDs)
    transport = ProcessTransport(reactor, processProtocol, plan)
    try:
        if hasattr(reactor, "_loop"):
            from reactor._aio_process import spawn_on_loop

            spawn_on_loop(reactor, transport, plan)
        else:
            _spawn_on_selector(reactor, transport, plan)
    except BaseException:
        transport._abandon()
        raise
    finally:
        plan.close_child_ends()
    return transport


def _reason(status: int | None) -> ProcessDone | ProcessTerminated:
    """Twisted's reason for a raw wait status (None: it was lost, see ``_PidfdChild``)."""
    if status is None:
        return ProcessTerminated(status=None)
    code: int | None = None
    sig: int | None = None
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
    if code or sig:
        return ProcessTerminated(code, sig, status)
    return ProcessDone(status)


def _signal_number(signalID: str | int) -> int:
    if isinstance(signalID, str):
        number = getattr(signal, "SIG" + signalID.upper().removeprefix("SIG"), None)
        if not isinstance(number, int):
            raise ValueError(f"unknown signal {signalID!r}")
        return number
    return int(signalID)


# -- what to start, and how --------------------------------------------------------------

# The trampoline (see the module docstring). argv: pty uid gid npairs
# (child_fd source_fd)*npairs nenv env* executable argv*. The environment
# travels in argv, because the interpreter edits its own (locale coercion
# adds LC_CTYPE), and -I keeps PYTHON* variables from changing how it runs.
_TRAMPOLINE = """\
import os, sys
a = [os.fsencode(x) for x in sys.argv]
pty, uid, gid, n = (int(x) for x in a[1:5])
pairs = [(int(a[5 + 2 * i]), int(a[6 + 2 * i])) for i in range(n)]
i = 5 + 2 * n
env = dict(e.split(b"=", 1) for e in a[i + 1:i + 1 + int(a[i])])
i += 1 + int(a[i])
try:
    import fcntl
    if pty:
        import termios
    if uid >= 0 or gid >= 0:
        import pwd
    top = max([3] + [max(p) + 1 for p in pairs])
    moved = {}
    for _, src in pairs:
        if src not in moved:
            moved[src] = fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, top)
    for dst, src in pairs:
        os.dup2(moved[src], dst)
    low = 0
    for fd in sorted({dst for dst, _ in pairs}) + [os.sysconf("SC_OPEN_MAX")]:
        if low < fd:  # (on 3.11, an empty range closes everything above it)
            os.closerange(low, fd)
        low = fd + 1
    if pty:
        try:
            os.setsid()
        except OSError:
            pass
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if uid >= 0 or gid >= 0:
        uid = os.geteuid() if uid < 0 else uid
        gid = os.getegid() if gid < 0 else gid
        if os.geteuid() == 0:
            try:
                os.initgroups(pwd.getpwuid(uid).pw_name, gid)
            except KeyError:
                os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    os.execve(a[i], a[i + 1:], env)
except BaseException as e:
    try:
        os.write(2, b"torsion spawnProcess: %s\\n" % str(e).encode())
    except OSError:
        pass
    os._exit(127)
"""


class _Plan:
    """One child to start: resolved executable, environment, and its descriptors.

    Creating a plan creates the pipes. ``parent_ends`` maps a child fd to our
    end of its pipe and its direction; ``fdmap`` maps every child fd to the
    descriptor of ours it is made from.
    """

    def __init__(self, executable: StrOrBytes, args: Sequence[StrOrBytes],
                 env: Mapping[Any, Any] | None, path: StrOrBytes | None, uid: int | None,
                 gid: int | None, usePTY: Any, childFDs: Mapping[int, str | int] | None) -> None:
        self.argv: list[StrOrBytes] = list(args) or [executable]
        self.env: dict[Any, Any] = dict(os.environ if env is None else env)
        self.cwd = path
        self.uid, self.gid = uid, gid
        self.executable = _resolve(executable, self.env, path)
        if (uid is not None or gid is not None) and os.geteuid() != 0 and (
                uid not in (None, os.geteuid()) or gid not in (None, os.getegid())):
            raise PermissionError(errno.EPERM, "only root may run a child as another "
                                  "user or group")
        self.pty = bool(usePTY)
        self.parent_ends: dict[int, tuple[int, Literal["r", "w", "pty"]]] = {}
        self.fdmap: dict[int, int] = {}
        self._child_ends: list[int] = []
        try:
            self._make_descriptors(usePTY, childFDs)
        except BaseException:
            self.close_child_ends()
            for fd, _ in self.parent_ends.values():
                os.close(fd)
            raise

    def _make_descriptors(self, usePTY: Any,
                          childFDs: Mapping[int, str | int] | None) -> None:
        if usePTY:
            if isinstance(usePTY, (tuple, list)):
                master, slave = usePTY[0], usePTY[1]
            else:
                import pty

                master, slave = pty.openpty()
            os.set_blocking(master, False)
            self.parent_ends[-1] = (master, "pty")
            self._child_ends.append(slave)
            self.fdmap = {0: slave, 1: slave, 2: slave}
            return
        for child_fd, kind in (_DEFAULT_CHILD_FDS if childFDs is None else childFDs).items():
            if not isinstance(child_fd, int) or child_fd < 0:
                raise ValueError(f"childFDs keys are descriptor numbers, not {child_fd!r}")
            if kind in ("r", "w"):
                read_end, write_end = os.pipe()
                ours, theirs = (read_end, write_end) if kind == "r" else (write_end, read_end)
                os.set_blocking(ours, False)
                self.parent_ends[child_fd] = (ours, "r" if kind == "r" else "w")
                self._child_ends.append(theirs)
                self.fdmap[child_fd] = theirs
            elif isinstance(kind, int) and not isinstance(kind, bool) and kind >= 0:
                self.fdmap[child_fd] = kind
            else:
                raise ValueError(f"childFDs[{child_fd}] must be 'r', 'w' or a descriptor "
                                 f"of ours, not {kind!r}")

    def close_child_ends(self) -> None:
        """Close the child's pipe ends in the parent (once the child has them)."""
        ends, self._child_ends = self._child_ends, []
        for fd in ends:
            os.close(fd)

    def needs_trampoline(self, popen: bool) -> bool:
        """Whether the spawner alone cannot give the child what was asked (module doc)."""
        return (self.pty or self.uid is not None or self.gid is not None
                or not {0, 1, 2} <= self.fdmap.keys()
                or any(src != fd for fd, src in self.fdmap.items() if fd > 2)
                or (not popen and (os.fsdecode(self.argv[0]) != self.executable
                                   or _inheritable_strays(set(self.fdmap.values())))))

    def spawn_args(self, popen: bool) -> tuple[list[StrOrBytes], dict[str, Any]]:
        """``(argv, keyword arguments)`` for ``Popen`` or ``loop.subprocess_exec``.

        Args:
            popen: the spawner is ``Popen`` (asyncio's is too), which takes an
                ``executable`` apart from ``argv[0]`` and closes the
                descriptors it is not given. libuv (uvloop) does neither.
        """
        kwargs: dict[str, Any] = {"cwd": self.cwd, "close_fds": True}
        if not self.needs_trampoline(popen):
            kwargs.update(env=self.env, stdin=self.fdmap[0], stdout=self.fdmap[1],
                          stderr=self.fdmap[2],
                          pass_fds=sorted(fd for fd in self.fdmap if fd > 2))
            if popen:
                kwargs["executable"] = self.executable
            return list(self.argv), kwargs
        if not sys.executable:
            raise NotImplementedError("this spawnProcess request needs a Python interpreter "
                                      "(sys.executable) to set the child up")
        pairs = sorted(self.fdmap.items())
        environ = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in self.env.items()]
        argv: list[StrOrBytes] = [
            sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(int(self.pty)),
            str(-1 if self.uid is None else self.uid), str(-1 if self.gid is None else self.gid),
            str(len(pairs)), *(str(n) for pair in pairs for n in pair),
            str(len(environ)), *environ, self.executable, *self.argv]
        # The trampoline runs in our own environment (it is our interpreter),
        # on our 0, 1 and 2, with every source descriptor at its own number.
        kwargs.update(env=dict(os.environ), stdin=None, stdout=None, stderr=None,
                      pass_fds=sorted({src for src in self.fdmap.values() if src > 2}),
                      start_new_session=self.pty)
        if popen:
            kwargs["executable"] = sys.executable
        return argv, kwargs


def _inheritable_strays(keep: set[int]) -> bool:
    """Whether we have an inheritable descriptor above 2 that the child must not get."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))  # no /proc: the usual suspects
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                if os.get_inheritable(fd):
                    return True
            except OSError:
                pass  # closed meanwhile (the listing's own descriptor, for one)
    return False


def _resolve(executable: StrOrBytes, env: Mapping[Any, Any], cwd: StrOrBytes | None) -> str:
    """The file to execute, checked now so that a bad one raises from ``spawnProcess``."""
    name = os.fsdecode(executable)
    if "/" in name:
        found = os.path.join(os.fsdecode(cwd), name) if cwd is not None else name
        if not os.path.exists(found):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        if os.path.isdir(found) or not os.access(found, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return os.path.abspath(found)
    search = env.get("PATH", env.get(b"PATH"))
    search = os.fsdecode(search) if search is not None else os.environ.get("PATH", os.defpath)
    which = shutil.which(name, path=search)
    if which is None:
        raise FileNotFoundError(errno.ENOENT, f"{name!r} not found in PATH", name)
    return os.path.abspath(which)


# -- the transport ---------------------------------------------------------------------


class ProcessTransport:
    """A running child, as the transport of its ``ProcessProtocol`` (Twisted's Process).

    Attributes:
        pid: the child's process id; None once it has exited (as in Twisted)
            and, on the asyncio backends, until the loop has reported it.
        status: -1 while it runs, then its raw wait status.
        pipes: our open pipes to it, by child descriptor number.
        proto: the protocol; None after ``processEnded``.
        disconnected: True once ``processEnded`` was called (until then a
            graceful ``stopGracefully`` counts the child as work in flight).
        reactor: the reactor watching it.
    """

    def __init__(self, reactor: Any, proto: Any, plan: _Plan) -> None:
        self.reactor = reactor
        self.proto = proto
        self.pid: int | None = None
        self.status = -1
        self.executable = plan.executable
        self.args = list(plan.argv)
        self.pipes: dict[int, _Pipe] = {}
        self._pty: _PtyPipe | None = None
        self._use_pty = plan.pty
        self._child: Any = None  # the backend's child watcher: send_signal(number)
        self._started = False
        self._pending: list[Callable[[], None]] = []
        self._exited = False
        self._exit_status: int | None = None
        self._ended = False
        self._paused = False
        self.disconnected = False
        if hasattr(reactor, "_loop"):
            from reactor._aio_process import LoopPoller

            poller: Any = LoopPoller(reactor._loop)
        else:
            poller = _Poller(reactor)
        for child_fd, (fd, kind) in plan.parent_ends.items():
            if kind == "r":
                self.pipes[child_fd] = _ReadPipe(self, poller, fd, child_fd)
            elif kind == "w":
                self.pipes[child_fd] = _WritePipe(self, poller, fd, child_fd)
            else:
                self._pty = _PtyPipe(self, poller, fd, 1)

    # -- life, as the backends report it ----------------------------------------

    def _start(self, pid: int) -> None:
        """The child is running: watch the pipes and call ``makeConnection``."""
        self.pid = pid
        self._started = True
        for pipe in self._all_pipes():
            pipe.start()
        try:
            self.proto.makeConnection(self)
        except Exception:
            log.exception("Unhandled error in makeConnection of %r", self.proto)
        pending, self._pending = self._pending, []
        for call in pending:
            call()

    def _deliver(self, call: Callable[[], None]) -> None:
        """Run ``call`` now, or after ``makeConnection`` if that has not happened yet."""
        if self._started:
            call()
        else:
            self._pending.append(call)

    def _child_exited(self, status: int | None) -> None:
        """The child has exited and been reaped, with wait status ``status``."""
        if self._exited:
            return
        self._exited = True
        self.status = -1 if status is None else status
        self.pid = None
        self._exit_status = status
        self._deliver(self._call_exited)

    def _call_exited(self) -> None:
        try:
            self.proto.processExited(Failure(_reason(self._exit_status)))
        except Exception:
            log.exception("Unhandled error in processExited of %r", self.proto)
        self._maybe_ended()

    def _pipe_lost(self, pipe: _Pipe) -> None:
        """One of our pipes closed (by either side); called once per pipe."""
        if pipe is self._pty:
            self._pty = None
        else:
            self.pipes.pop(pipe.child_fd, None)
            self._deliver(lambda: self._call_child_lost(pipe.child_fd))
            return
        self._deliver(self._maybe_ended)

    def _call_child_lost(self, child_fd: int) -> None:
        try:
            self.proto.childConnectionLost(child_fd)
        except Exception:
            log.exception("Unhandled error in childConnectionLost of %r", self.proto)
        self._maybe_ended()

    def _maybe_ended(self) -> None:
        if self._ended or not self._exited or self.pipes or self._pty is not None:
            return
        self._ended = True
        self.disconnected = True
        self._forget()
        proto, self.proto = self.proto, None
        try:
            proto.processEnded(Failure(_reason(self._exit_status)))
        except Exception:
            log.exception("Unhandled error in processEnded of %r", proto)

    def _forget(self) -> None:
        self.reactor._tracked().discard(self)

    def _reactor_shutdown(self) -> None:
        """The reactor is shutting down: close our pipes, as Twisted does.

        The child keeps running; its exit is still reported if the reactor
        runs again (or now, if it has already exited).
        """
        for pipe in self._all_pipes():
            pipe.close_now()
        if not self._exited and self._child is not None:
            self._child.reap()

    def _abandon(self) -> None:
        """Starting the child failed: close our ends quietly."""
        for pipe in self._all_pipes():
            pipe.close_quietly()
        self.pipes.clear()
        self._pty = None

    def _all_pipes(self) -> list[_Pipe]:
        pipes: list[_Pipe] = list(self.pipes.values())
        if self._pty is not None:
            pipes.append(self._pty)
        return pipes

    # -- the IProcessTransport API -------------------------------------------------

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write ``data`` to the child's descriptor ``childFD`` (a "w" pipe).

        Raises:
            KeyError: no open pipe for ``childFD`` (as in Twisted).
        """
        if self._use_pty:
            raise NotImplementedError("a PTY process has no separate descriptors")
        self.pipes[childFD].write(data)

    def write(self, data: bytes) -> None:
        """Write to the child's stdin; ignored when it has none (as in Twisted)."""
        pipe = self._pty if self._pty is not None else self.pipes.get(0)
        if pipe is not None:
            pipe.write(data)

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        """Write each of ``seq`` to the child's stdin."""
        self.write(b"".join(seq))

    def closeChildFD(self, childFD: int) -> None:
        """Close our end of the pipe to ``childFD`` (a write pipe after flushing)."""
        if self._use_pty:
            raise NotImplementedError("a PTY process has no separate descriptors")
        pipe = self.pipes.get(childFD)
        if pipe is not None:
            pipe.lose()

    def closeStdin(self) -> None:
        """Close the child's stdin once what was written has been sent."""
        if not self._use_pty:
            self.closeChildFD(0)

    def closeStdout(self) -> None:
        """Stop reading the child's stdout and close it."""
        if not self._use_pty:
            self.closeChildFD(1)

    def closeStderr(self) -> None:
        """Stop reading the child's stderr and close it."""
        if not self._use_pty:
            self.closeChildFD(2)

    def loseConnection(self) -> None:
        """Close stdin, stderr and stdout (a PTY: after flushing what was written)."""
        if self._use_pty:
            if self._pty is not None:
                self._pty.lose()
            return
        self.closeStdin()
        self.closeStderr()
        self.closeStdout()

    def signalProcess(self, signalID: str | int) -> None:
        """Send a signal: a name ("TERM", "KILL", "INT", "HUP", ...) or a number.

        Raises:
            ProcessExitedAlready: the child has exited.
        """
        number = _signal_number(signalID)
        if self._exited or self._child is None:
            raise ProcessExitedAlready()
        self._child.send_signal(number)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Feed the child's stdin from ``producer``, with flow control.

        Without a stdin, ``producer.stopProducing()`` is called at once.
        """
        pipe = self._pty if self._pty is not None else self.pipes.get(0)
        if isinstance(pipe, _WritePipe):
            pipe.registerProducer(producer, streaming)
        else:
            producer.stopProducing()

    def unregisterProducer(self) -> None:
        """Stop feeding stdin from the producer."""
        pipe = self._pty if self._pty is not None else self.pipes.get(0)
        if isinstance(pipe, _WritePipe):
            pipe.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop reading the child's output (it blocks once the pipes are full)."""
        self._paused = True
        for pipe in self._all_pipes():
            pipe.pause()

    def resumeProducing(self) -> None:
        """Read the child's output again."""
        self._paused = False
        for pipe in self._all_pipes():
            pipe.resume()

    def stopProducing(self) -> None:
        """Close every pipe (the consumer of the output went away)."""
        self.loseConnection()

    def getHost(self) -> Any:
        raise NotImplementedError("a process has no address")

    def getPeer(self) -> Any:
        raise NotImplementedError("a process has no address")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} status={self.status}>"


# -- the selector backend: Popen, then a pidfd (or polling) to reap ------------------------


def _spawn_on_selector(reactor: Any, transport: ProcessTransport, plan: _Plan) -> None:
    argv, kwargs = plan.spawn_args(popen=True)
    popen = subprocess.Popen(argv, **kwargs)
    try:
        pidfd: int | None = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        pidfd = None  # not Linux 5.3+, or out of descriptors: poll instead
    child: _PidfdChild | _PolledChild
    if pidfd is not None:
        child = _PidfdChild(reactor, transport, popen, pidfd)
    else:
        child = _PolledChild(reactor, transport, popen)
    transport._child = child
    reactor._tracked().add(transport)
    transport._start(popen.pid)
    child.watch()
