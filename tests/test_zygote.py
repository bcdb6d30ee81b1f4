"""conftest.run_cli starts CLI jobs by fork from a warm interpreter (tests/zygote.py): a job must not
be able to tell that child from ``python -m`` in a fresh interpreter. A probe module prints what a job
reads of its process; both ways must print the same, exit the same and stream the same."""

import json
import signal
import subprocess
import sys

import pytest
from conftest import WORKER_THREADS, ZYGOTE, clean_env, write_files

PROBE = """
import atexit, json, os, sys
import torch

atexit.register(lambda: print("atexit ran", flush=True))
mode = sys.argv[1]
if mode == "facts":
    import senet_ablate.train.compiled as compiled  # reads the compile-cache variables at import
    import my_helper  # from PYTHONPATH, written after the warm interpreter started
    print(json.dumps({
        "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[:2], "env": dict(os.environ),
        "threads": torch.get_num_threads(), "stdin": sys.stdin.read(), "helper": my_helper.VALUE,
        "name": __name__, "user_cache": compiled._USER_COMPILE_CACHE,
        "loaded": sorted(m for m in sys.modules if m.startswith(("senet_ablate", "hydra_plugins"))),
    }))
    print("to stderr", file=sys.stderr)
elif mode == "exit":
    sys.exit(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
elif mode == "executor":  # left running, as joblib's loky leaves its manager thread: shut down at exit
    from concurrent.futures import ThreadPoolExecutor
    ThreadPoolExecutor(1).submit(print, "task ran", flush=True)
elif mode == "thread":
    import threading, time
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread ended", flush=True))).start()
elif mode == "raise":
    raise RuntimeError("probe failed")
elif mode == "signal":
    os.kill(os.getpid(), 15)
elif mode == "sleep":
    import time
    time.sleep(60)
"""


def both(tmp_path, *args, **env):
    """The probe run fresh and by ZYGOTE.run: (fresh, warm) CompletedProcesses."""
    env = clean_env(PYTHONPATH=str(tmp_path / "lib"), PYTHONUNBUFFERED="1", TORCHINDUCTOR_CACHE_DIR="/x", **env)
    cmd = [sys.executable, "-m", "probe", *args]
    fresh = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    warm = ZYGOTE.run("probe", list(args), cwd=tmp_path, env=env, timeout=300)
    return fresh, warm


@pytest.fixture
def probe(tmp_path):
    write_files(tmp_path, {"probe.py": PROBE, "lib/my_helper.py": f"VALUE = {str(tmp_path)!r}\n"})
    return tmp_path


OTHER = 2 if WORKER_THREADS == 1 else 1  # a thread count the warm interpreter was not started with


@pytest.mark.parametrize("threads", [WORKER_THREADS, OTHER], ids=["forked", "start-up var: fresh"])
def test_a_warm_child_sees_what_a_fresh_interpreter_sees(probe, threads):
    fresh, warm = both(probe, "facts", "x=1", OMP_NUM_THREADS=str(threads))
    assert fresh.returncode == warm.returncode == 0, (fresh.stderr, warm.stderr)
    assert fresh.stdout == warm.stdout and fresh.stdout.endswith("atexit ran\n")
    assert "to stderr" in fresh.stderr and fresh.stderr == warm.stderr
    facts = json.loads(fresh.stdout.splitlines()[0])
    assert facts["threads"] == threads and facts["user_cache"] == ["TORCHINDUCTOR_CACHE_DIR"]
    assert facts["helper"] == str(probe) and facts["argv"][1:] == ["facts", "x=1"]
    assert "senet_ablate.train.compiled" in facts["loaded"]


@pytest.mark.parametrize(
    ("args", "rc", "says"),
    [
        (("exit", "3"), 3, ""),
        (("exit", "no data"), 1, "no data"),
        (("raise",), 1, "RuntimeError: probe failed"),
        (("signal",), -signal.SIGTERM, ""),
        (("thread",), 0, ""),  # a thread still running at the end: joined before the atexit hooks
        (("executor",), 0, ""),  # an executor never shut down: threading's exit hook ends it
    ],
)
def test_a_warm_child_ends_as_a_fresh_interpreter_does(probe, args, rc, says):
    fresh, warm = both(probe, *args)
    assert fresh.returncode == warm.returncode == rc
    assert says in fresh.stderr and says in warm.stderr
    assert fresh.stdout == warm.stdout


def test_a_warm_child_past_its_timeout_is_killed_and_reported(probe):
    env = clean_env(PYTHONPATH=str(probe / "lib"), PYTHONUNBUFFERED="1")
    with pytest.raises(subprocess.TimeoutExpired):
        ZYGOTE.run("probe", ["sleep"], cwd=probe, env=env, timeout=1)
    assert ZYGOTE.run("probe", ["exit", "0"], cwd=probe, env=env, timeout=300).returncode == 0  # still serves


def test_a_sitecustomize_on_the_jobs_pythonpath_runs_first_in_a_warm_child_too(probe):
    """tests/pause_hook is one: a fresh interpreter imports it at start-up, a warm child before its module."""
    write_files(probe, {"lib/sitecustomize.py": "import os\nos.environ['SITE_RAN'] = 'before the module'\n"})
    fresh, warm = both(probe, "facts")
    assert fresh.returncode == warm.returncode == 0, (fresh.stderr, warm.stderr)
    assert fresh.stdout == warm.stdout and '"SITE_RAN": "before the module"' in fresh.stdout


def test_a_started_warm_child_is_signalled_waited_for_and_read_as_a_popen_is(probe):
    env = clean_env(PYTHONPATH=str(probe / "lib"), PYTHONUNBUFFERED="1")
    fresh = subprocess.Popen([sys.executable, "-m", "probe", "sleep"], cwd=probe, env=env, text=True)
    warm = ZYGOTE.start("probe", ["sleep"], cwd=probe, env=env)
    assert fresh.poll() is warm.poll() is None
    for proc in (fresh, warm):
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert fresh.returncode == warm.returncode == -signal.SIGTERM
    assert ZYGOTE.run("probe", ["exit", "0"], cwd=probe, env=env, timeout=300).returncode == 0  # serves again
