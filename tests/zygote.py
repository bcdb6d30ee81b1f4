"""A warm interpreter that starts the suite's CLI jobs (conftest.run_cli, start_cli) by fork: torch, torchvision,
Hydra, pandas, scipy, scikit-learn and matplotlib are imported once, and each job is a forked child that
runs ``python -m <module> args`` as a fresh interpreter would, with the job's own argv, environment,
working directory, sys.path, standard streams and exit status. A fresh interpreter spends ~3 s of CPU
importing those libraries and ~1 s tearing them down, around jobs that often take under a second
(six short jobs of tests/test_cli.py: 14.5 s of CPU forked, 25.7 s fresh, pytest's own start-up included).

The warm process never runs a tensor op (a child has no thread pool to inherit) and never imports
``senet_ablate`` or ``hydra_plugins``: each child imports them under its own environment
(``train/compiled.py`` reads the compile-cache variables at import; Hydra scans its plug-ins per job).
What an interpreter or torch reads only at start-up (START_VARS) cannot change in a child: a job that sets
them otherwise gets a fresh interpreter. A ``sitecustomize`` on the job's PYTHONPATH (tests/pause_hook) the
child imports before the module, as an interpreter does at start-up.
tests/test_zygote.py checks that a job cannot tell the two apart.

Protocol, JSON lines: in ``{"module", "args", "env", "cwd", "stdout", "stderr"}`` (the two paths
receive the child's fd 1 and 2); out ``{"pid": N}`` at the fork, then ``{"rc": N}`` (as subprocess
reports it: negative for a signal). ``Zygote.run`` waits for the job; ``Zygote.start`` returns at the fork
(a ``Running`` job, for a test that signals, kills or holds it).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

# read once, when an interpreter or torch starts
START_VARS = (
    *("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED", "PYTHONWARNINGS"),
    *("PYTHONUNBUFFERED", "PYTHONSTARTUP", "PYTHONOPTIMIZE", "PYTHONDEVMODE", "PYTHONSAFEPATH", "PYTHONNOUSERSITE"),
)


class Zygote:
    """The client, in a test worker: one warm interpreter, started on first use, one job at a time."""

    def __init__(self, env: dict):
        self.env, self.proc, self.lock = env, None, threading.Lock()
        self.running: Running | None = None  # a started job not yet waited for

    def serves(self, env: dict) -> bool:
        """Whether a forked child can be the job: never where SENET_TEST_FRESH_PROCESS=1 (to rule the fork
        out when a test fails), nor for a job whose start-up differs from the warm interpreter's."""
        if os.environ.get("SENET_TEST_FRESH_PROCESS") == "1":
            return False
        return all(env.get(k) == self.env.get(k) for k in START_VARS)

    def run(self, module: str, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        """``python -m module args`` in ``cwd`` with exactly ``env``: forked when it can be, else fresh."""
        cmd = [sys.executable, "-m", module, *args]
        if not self.serves(env):
            return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        job = self.start(module, args, cwd, env)
        out, err = job.communicate(timeout)  # killed at the timeout: TimeoutExpired, with what it wrote
        return subprocess.CompletedProcess(cmd, job.returncode, out, err)

    def start(self, module: str, args: list[str], cwd: Path, env: dict) -> Running | subprocess.Popen:
        """``python -m module args`` started and left running, its output kept (``communicate`` gives it): forked
        when it can be, else fresh. Until it is waited for, this zygote serves no other job."""
        cmd = [sys.executable, "-m", module, *args]
        if not self.serves(env):
            pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
            return subprocess.Popen(cmd, cwd=cwd, env=env, **pipes)
        self.lock.acquire()
        tmp = tempfile.mkdtemp(prefix="senet-cli-")
        streams = {"stdout": os.path.join(tmp, "stdout"), "stderr": os.path.join(tmp, "stderr")}
        try:
            pid = self.launch({"module": module, "args": args, "env": env, "cwd": str(cwd), **streams})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            self.lock.release()
            raise
        self.running = Running(self, cmd, pid, Path(tmp))
        return self.running

    def launch(self, job: dict) -> int:
        """Send ``job`` (starting the warm interpreter if it is not running); the child's pid."""
        if self.proc is None or self.proc.poll() is not None:
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
            self.proc = subprocess.Popen([sys.executable, __file__], **pipes, env=self.env)
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"]

    def reap(self, pid: int, timeout: float) -> tuple[int, bool]:
        """Child ``pid``'s exit status once it ends, and whether it was killed at ``timeout`` seconds."""
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: killed.set() or os.kill(pid, signal.SIGKILL))
        timer.start()
        rc = json.loads(self.proc.stdout.readline())["rc"]
        timer.cancel()
        return rc, killed.is_set()

    def settle(self) -> None:
        """Kill and wait for a started job a test left running (it failed before waiting), so that the next
        job of this worker is served."""
        if self.running is not None and self.running.returncode is None:
            self.running.send_signal(signal.SIGKILL)
            self.running.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def child(job: dict, base_path: list[str]) -> None:
    """Become ``python -m <module> <args>`` started in ``job["cwd"]`` with ``job["env"]``; never returns."""
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])  # putenv: libraries that read the C environment later see it too
    extra = [p for p in job["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *extra, *base_path]
    importlib.invalidate_caches()  # files written since this process started (a user's package)
    sys.argv = [job["module"], *job["args"]]
    if any(Path(p, "sitecustomize.py").exists() for p in extra):
        _site_customize()
    try:
        runpy.run_module(job["module"], run_name="__main__", alter_sys=True)
        ending = Ending(0)
    except SystemExit as e:
        ending = Ending(e.code if isinstance(e.code, int) else _say(e.code))
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        ending = Ending(None, signal.SIGINT)  # as CPython ends on an uncaught Ctrl-C: killed by SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        ending = Ending(1)
    ENDING.append(ending)
    raise SystemExit(ending.code or 0)  # the interpreter's own exit, up to end_now


def _site_customize() -> None:
    """Import the job's ``sitecustomize`` as an interpreter does at start-up: an error in it is reported, not raised."""
    sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except Exception as e:  # the message CPython's site module prints
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(e).__name__}: {e}", file=sys.stderr)


class Running:
    """A job forked by ``Zygote.start``: what the tests use of ``subprocess.Popen`` (pid, poll, wait, communicate,
    send_signal, returncode). Its stdout and stderr are read once it has ended."""

    def __init__(self, zygote: Zygote, args: list[str], pid: int, tmp: Path):
        self.zygote, self.args, self.pid, self.tmp = zygote, args, pid, tmp
        self.returncode: int | None = None
        self.output: tuple[str, str] = ("", "")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)  # the warm interpreter reaps its child at once: no pid, no child
                return None
            except ProcessLookupError:
                self.wait()
        return self.returncode

    def wait(self, timeout: float = 600) -> int:
        if self.returncode is None:
            try:
                rc, killed = self.zygote.reap(self.pid, timeout)
                self.output = tuple(_read(Path(self.tmp, k)) for k in ("stdout", "stderr"))
                self.returncode = rc
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.zygote.running = None
                self.zygote.lock.release()
            if killed:
                raise subprocess.TimeoutExpired(self.args, timeout, *self.output)
        return self.returncode

    def communicate(self, timeout: float = 600) -> tuple[str, str]:
        self.wait(timeout)
        return self.output

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)


def _read(stream: Path) -> str:
    """What a child wrote to ``stream``; nothing if it was killed before it opened it."""
    return stream.read_text(errors="replace") if stream.exists() else ""


def _say(code) -> int:
    """sys.exit("message"): the message on stderr, status 1 (None: status 0)."""
    if code is None:
        return 0
    print(code, file=sys.stderr)
    return 1


@dataclass(frozen=True)
class Ending:
    """How a child ends: its exit status, or the signal that kills it."""

    code: int | None
    by_signal: int | None = None


ENDING: list[Ending] = []  # set in a child once its job is done


def end_now() -> None:
    """The last exit hook of the warm interpreter, registered before any library's. In a child the interpreter's
    own exit has run everything an exit runs first (threading's exit hooks, e.g. an executor's, and the join of
    non-daemon threads; then every other atexit hook); this ends the child there, streams flushed, without
    tearing down every module object: that teardown took ~0.9 s of a job's CPU with torch loaded."""
    if not ENDING:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if ENDING[0].by_signal is not None:
        signal.signal(ENDING[0].by_signal, signal.SIG_DFL)
        os.kill(os.getpid(), ENDING[0].by_signal)
    os._exit(ENDING[0].code)


def serve() -> None:
    """The warm interpreter: one job at a time, for the worker that started it, until its stdin closes."""
    atexit.register(end_now)  # first, so that it runs last (atexit runs its hooks in reverse)
    import hydra  # noqa: F401
    import matplotlib  # noqa: F401
    import omegaconf  # noqa: F401
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.datasets  # noqa: F401  (the digits)
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    base_path = sys.path[1:]  # the interpreter's own entries; [0] is this file's dir
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            reply.close()
            child(job, base_path)  # never returns: the child ends in end_now()
        print(json.dumps({"pid": pid}), file=reply)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), file=reply)


if __name__ == "__main__":
    serve()
