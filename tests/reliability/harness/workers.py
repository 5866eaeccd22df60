"""Worker processes: run workers as real subprocesses, so a SIGKILL is a real one.

A `WorkerProcess` starts a command (usually ``python -m cqrs_ddd… worker …``) in a
session of its own, with stdout and stderr going to files (a new pair per start,
so the output of a killed run survives its restart). `kill` sends SIGKILL and
`stop` SIGTERM then SIGKILL, both to the whole process group. Every wait has a
deadline and is asynchronous: it polls, so the event loop (say, a `FaultProxy`
the worker talks through) keeps running meanwhile.

The child's environment is the parent's, minus any failpoint variables (a child's
failpoints are armed only by the ``env`` given to it), plus ``PYTHONUNBUFFERED=1``
and ``tests/reliability`` on ``PYTHONPATH`` (so a child can ``import harness``), plus
``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import keyword
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cqrs_ddd_core.failpoints import FAILPOINTS_SEED_VARIABLE, FAILPOINTS_VARIABLE

RELIABILITY_DIRECTORY = Path(__file__).resolve().parent.parent
"""``tests/reliability``: put on the children's ``PYTHONPATH``."""

POLL_SECONDS = 0.02
WAIT_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class WorkerTimeoutError(TimeoutError):
    """A worker did not reach the awaited state (exit, some output) before its deadline."""

    def __init__(self, worker: WorkerProcess, awaited: str, within: float) -> None:
        self.worker = worker
        super().__init__(f"{worker.name} (pid {worker.pid}) did not {awaited} within {within:g} s")


class WorkerExitedError(RuntimeError):
    """A worker exited while a test waited for it to print something."""

    def __init__(self, worker: WorkerProcess, awaited: str) -> None:
        self.worker = worker
        stderr_tail = worker.stderr()[-2000:]
        super().__init__(
            f"{worker.name} exited with {worker.returncode} before printing {awaited!r}; "
            f"stderr ends with:\n{stderr_tail}"
        )


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a finished process ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def python_args(target: str | Path, *args: str) -> list[str]:
    """Return the command line that runs ``target`` with this interpreter.

    A `Path` is a script; a dotted name of identifiers (``cqrs_ddd_core.worker``) is
    a module, run with ``-m``; any other string is code, run with ``-c``.
    """
    if isinstance(target, Path):
        return [sys.executable, str(target), *args]
    parts = target.split(".")
    if all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
        return [sys.executable, "-m", target, *args]
    return [sys.executable, "-c", target, *args]


class WorkerProcess:
    """One worker command that a test can start, kill, stop and restart.

    Output of the n-th start goes to ``<log_dir>/<name>.<n>.stdout`` and ``.stderr``
    (``log_dir`` defaults to a new temporary directory; pass pytest's ``tmp_path``).
    Use ``async with`` to have it stopped, whatever happens in the test.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        name: str = "worker",
        cwd: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.env = dict(env or {})
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="cqrs_ddd_worker_"))
        self.name = name
        self.cwd = cwd
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def python(
        cls,
        target: str | Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        name: str = "worker",
        cwd: Path | None = None,
    ) -> WorkerProcess:
        """Make a worker running ``target`` with this interpreter (see `python_args`)."""
        return cls(python_args(target, *args), env=env, log_dir=log_dir, name=name, cwd=cwd)

    @property
    def pid(self) -> int | None:
        """Return the pid of the latest start, or None before the first."""
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """Return the exit status (negative: killed by that signal), None while running."""
        return None if self._process is None else self._process.poll()

    @property
    def is_running(self) -> bool:
        """Tell whether the latest start is still running."""
        return self._process is not None and self._process.poll() is None

    @property
    def stdout_path(self) -> Path:
        """Return the stdout file of the latest start."""
        return self.log_dir / f"{self.name}.{self.starts}.stdout"

    @property
    def stderr_path(self) -> Path:
        """Return the stderr file of the latest start."""
        return self.log_dir / f"{self.name}.{self.starts}.stderr"

    def stdout(self) -> str:
        """Return what the latest start printed on stdout so far."""
        return _read(self.stdout_path)

    def stderr(self) -> str:
        """Return what the latest start printed on stderr so far."""
        return _read(self.stderr_path)

    def start(self) -> None:
        """Start the command; raises `RuntimeError` if it is still running."""
        if self.is_running:
            msg = f"{self.name} (pid {self.pid}) is already running"
            raise RuntimeError(msg)
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(  # noqa: S603 - the test's own command line
                self.args,
                env=self._child_environment(),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: kill reaches its children
            )

    async def wait(self, within: float = WAIT_TIMEOUT_SECONDS) -> int:
        """Wait until the process exits and return its exit status.

        Raises `WorkerTimeoutError` (and leaves it running) after ``within`` seconds.
        """
        process = self._started()
        deadline = time.monotonic() + within
        while (returncode := process.poll()) is None:
            if time.monotonic() > deadline:
                raise WorkerTimeoutError(self, "exit", within)
            await asyncio.sleep(POLL_SECONDS)
        return returncode

    async def kill(self, within: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send SIGKILL to its process group, wait for it to exit, return the status."""
        self._signal(signal.SIGKILL)
        return await self.wait(within)

    async def stop(self, grace: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the status."""
        self._signal(signal.SIGTERM)
        try:
            return await self.wait(grace)
        except WorkerTimeoutError:
            return await self.kill()

    async def wait_for_output(self, text: str, within: float = WAIT_TIMEOUT_SECONDS) -> None:
        """Wait until the latest start's stdout contains ``text``.

        Raises `WorkerExitedError` if it exits first and `WorkerTimeoutError` after
        ``within`` seconds.
        """
        process = self._started()
        deadline = time.monotonic() + within
        while text not in self.stdout():
            if process.poll() is not None:
                if text in self.stdout():  # printed just before exiting
                    return
                raise WorkerExitedError(self, text)
            if time.monotonic() > deadline:
                raise WorkerTimeoutError(self, f"print {text!r}", within)
            await asyncio.sleep(POLL_SECONDS)

    async def __aenter__(self) -> WorkerProcess:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.is_running:
            await self.stop()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            msg = f"{self.name} was never started"
            raise RuntimeError(msg)
        return self._process

    def _signal(self, signal_number: int) -> None:
        process = self._started()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited since the poll
                os.killpg(process.pid, signal_number)

    def _child_environment(self) -> dict[str, str]:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in (FAILPOINTS_VARIABLE, FAILPOINTS_SEED_VARIABLE)
        }
        python_path = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(RELIABILITY_DIRECTORY), *([python_path] if python_path else [])]
        )
        environment["PYTHONUNBUFFERED"] = "1"
        return environment | self.env


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


async def run_python(
    target: str | Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    within: float = 60.0,
) -> ProcessResult:
    """Run ``target`` (see `python_args`) to completion and return how it ended.

    Raises `WorkerTimeoutError` after ``within`` seconds, having killed it.
    """
    worker = WorkerProcess(python_args(target, *args), env=env, log_dir=log_dir, name="python")
    worker.start()
    try:
        returncode = await worker.wait(within)
    except WorkerTimeoutError:
        await worker.kill()
        raise
    return ProcessResult(returncode, worker.stdout(), worker.stderr())
