import atexit
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from zygote import Running, Zygote

ROOT = Path(__file__).resolve().parent.parent

# every job of the suite (in-process or a CLI subprocess) keeps its decoded-data and compile caches
# in one throw-away dir of this session, never in the user's ~/.cache
if "SENET_ABLATE_CACHE" not in os.environ:
    import shutil
    import tempfile

    os.environ["SENET_ABLATE_CACHE"] = tempfile.mkdtemp(prefix="senet-ablate-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SENET_ABLATE_CACHE"], True)
CONF = ROOT / "conf"

# pytest-xdist runs one worker per core: each worker, and every job it starts, keeps to its share of the
# cores. Two workers that each ran torch's default (a thread per core) would oversubscribe the machine,
# and OpenMP threads that wait for a busy core made the suite twice as slow (tests/test_models.py: 255 s
# in the parallel suite with 2 threads per worker, 87 s alone).
WORKER_THREADS = max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
os.environ["OMP_NUM_THREADS"] = str(WORKER_THREADS)  # before torch is imported in this worker
# torch.compile's first use in a fresh cache probes each vector ISA the CPU lists by building and loading a
# test program (ten g++ builds: 6 of the compile test's 25 s alone); the suite's jobs take the ISA from
# /proc/cpuinfo instead (inductor's TORCHINDUCTOR_VEC_ISA_OK, read when torch._inductor is imported)
os.environ.setdefault("TORCHINDUCTOR_VEC_ISA_OK", "1")

# a docs example: a fenced block after <!-- docs-test: file NAME --> (saved as NAME) or <!-- docs-test: run -->
# (run), and the output block right after a run, if any (tests/test_docs.py)
DOCS_MARK = re.compile(r"<!-- docs-test: (file (\S+)|run) -->\n```(\w*)\n(.*?)```\n(?:\n```\n(.*?)```\n)?", re.S)


# seconds each test module took in a whole run (SENET_TEST_DURATIONS=write python -m pytest writes it anew)
DURATIONS = ROOT / "tests" / "durations.json"


def pytest_collection_modifyitems(config, items):
    """The longest modules first: pytest-xdist hands a worker a whole module (--dist loadscope) in the order
    collected, so a long module collected last (test_train.py, alphabetically) ran alone at the end while the
    other worker idled. A module's length is read from DURATIONS, else guessed (20 s a slow test, 0.3 s
    another). The order within a module is kept; every worker sorts the same list the same way."""
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    guess: dict[str, float] = {}
    for item in items:
        guess[_module(item)] = guess.get(_module(item), 0) + (20 if item.get_closest_marker("slow") else 0.3)
    items.sort(key=lambda item: -known.get(_module(item), guess[_module(item)]))


def _module(item_or_report) -> str:
    return item_or_report.nodeid.split("::")[0]


SPENT: dict[str, float] = {}  # seconds per module in this run, when SENET_TEST_DURATIONS=write


def pytest_runtest_logreport(report):
    if os.environ.get("SENET_TEST_DURATIONS") == "write":  # xdist: the workers' reports reach this hook too
        SPENT[_module(report)] = SPENT.get(_module(report), 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    if SPENT and not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or a run without workers)
        DURATIONS.write_text(json.dumps({m: round(t, 1) for m, t in sorted(SPENT.items())}, indent=1) + "\n")


def se_yaml(model: dict | None = None) -> dict:
    """conf/se/se.yaml's keys, resolved against a model node (``se.stages`` starts from ``model.se_stages``)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.create({"model": model or {}, "se": OmegaConf.load(CONF / "se" / "se.yaml")})
    return OmegaConf.to_container(raw, resolve=True)["se"]


def doc_steps(page: Path) -> list[tuple[str, str | None, str, str, str]]:
    """(kind, file name, language, code, expected output) for each marked block of ``page``."""
    return [(m[1].split()[0], m[2], m[3], m[4], m[5] or "") for m in DOCS_MARK.finditer(page.read_text())]


def user_package() -> dict[str, str]:
    """The user's own package of docs/bring-your-own.md (my_gates.py, my_nets.py, my_data.py): the
    one copy of it that the docs test, the plug-in tests and the wheel test all use."""
    return {name: code for kind, name, _, code, _ in doc_steps(ROOT / "docs/bring-your-own.md") if kind == "file"}


def write_files(where: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(text)
    return where


EXPERIMENTS = sorted(
    p.relative_to(ROOT / "experiments").with_suffix("").as_posix() for p in (ROOT / "experiments").rglob("*.yaml")
)


# the caller's settings that change what a job prints or does: Hydra (HYDRA_FULL_ERROR prints tracebacks),
# wandb, GPUs, thread counts, SLURM / submitit, torchrun's rendezvous, compile caches, Python start-up
CALLER_VARS = {
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONWARNINGS",
}
CALLER_PREFIXES = ("HYDRA_", "WANDB_", "SLURM_", "SUBMITIT_", "TORCHELASTIC_")


def _from_caller(key: str) -> bool:
    return key in CALLER_VARS or key.startswith(CALLER_PREFIXES)


def clean_env(**extra: str | None) -> dict:
    """The environment for a subprocess of the suite: this one without CALLER_VARS / CALLER_PREFIXES
    (SENET_ABLATE_CACHE, PATH, HOME stay), with the worker's share of the cores (OMP_NUM_THREADS), then
    ``extra``: what the test sets on purpose (None removes a variable, e.g. to test ``threads: auto``)."""
    env = {k: v for k, v in os.environ.items() if not _from_caller(k)}
    env.update({"OMP_NUM_THREADS": str(WORKER_THREADS), **extra})
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def clean_environ(monkeypatch):
    """clean_env() for this process (and what it spawns) during one test: in-process jobs read these too
    (OMP_NUM_THREADS included: without it, ``threads: auto`` takes the launcher's or torch's count)."""
    for key in [k for k in os.environ if _from_caller(k)]:
        monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def worker_threads():
    """Every test starts on the worker's share of the cores (an in-process job may have set more), and leaves
    no started job running (start_cli) when it fails before waiting for it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != WORKER_THREADS:
        torch.set_num_threads(WORKER_THREADS)
    yield
    ZYGOTE.settle()


def run_cli(
    module: str, *args: str, cwd: Path, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m senet_ablate.<module> args`` as a user would, in ``cwd``, in clean_env() plus ``env``:
    forked from this worker's warm interpreter (tests/zygote.py; a job cannot tell: tests/test_zygote.py),
    or in a fresh interpreter where SENET_TEST_FRESH_PROCESS=1. For what a process does: exit codes, what
    the console shows, signals, ``-m`` sweeps, ``--cfg``; a test of what a job computes uses run_job."""
    env = clean_env(PYTHONUNBUFFERED="1", **(env or {}))
    proc = ZYGOTE.run(f"senet_ablate.{module}", list(args), cwd=cwd, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}")
    return proc


def start_cli(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen | Running:
    """``python -m senet_ablate.<module> args`` started and left running, for a test that signals, kills or holds
    it (pause_env): forked as run_cli's jobs are, its output from ``communicate()`` as (stdout, stderr)."""
    env = clean_env(**{"PYTHONUNBUFFERED": "1", **(env or {})})
    return ZYGOTE.start(f"senet_ablate.{module}", list(args), cwd=cwd, env=env)


def borrow_backbone(model, state: dict):
    """``model``, built on the meta device, with ``state``'s tensors assigned (shared, not copied) and only its
    attention blocks given storage and a fresh init: each layer's ``reset_parameters``, N(0, 0.1) for a block's
    own weights (SGE's). A test of the blocks then pays their forward and backward, not the building and
    initialising of a large backbone in every case. The state's keys must be the model's less its blocks'."""
    from torch import nn

    from senet_ablate.se import ChannelAttention

    loaded = model.load_state_dict(state, strict=False, assign=True)
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, ChannelAttention)}
    assert blocks and not loaded.unexpected_keys, loaded.unexpected_keys
    block_keys = {f"{n}.{k}" for n, b in blocks.items() for k in b.state_dict()}
    assert set(loaded.missing_keys) == {k for k in block_keys if not k.endswith(".num_batches_tracked")}  # BN's
    # counter is never reported missing (checkpoints older than it load), and reset_parameters sets it below
    for block in blocks.values():
        block.to_empty(device="cpu")
        for layer in block.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        for weight in block.parameters(recurse=False):
            nn.init.normal_(weight, std=0.1)
    assert not any(t.is_meta for t in model.state_dict().values())
    return model


def run_job(*overrides: str, cwd: Path) -> dict:
    """One job in this process, as ``senet-ablate overrides`` runs it in ``cwd``: its study row put in
    front (run/cmdline.py), composed once by Hydra's compose API with its hydra node, its run dir as
    Hydra would make it, then ``senet_ablate.run.app.run``; returns its record. A failure raises."""
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from senet_ablate.run.app import run
    from senet_ablate.run.cmdline import CONFIG_MODULE, row_in_front

    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name="config", overrides=row_in_front(list(overrides)), return_hydra_config=True)
    out_dir = cwd / cfg.hydra.run.dir
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    import torch

    here, deterministic = os.getcwd(), torch.are_deterministic_algorithms_enabled()
    os.chdir(cwd)
    try:
        return run(cfg, out_dir)
    finally:
        os.chdir(here)
        torch.use_deterministic_algorithms(deterministic)  # ``deterministic=true`` sets it for the process
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


ZYGOTE = Zygote(clean_env(PYTHONUNBUFFERED="1"))
atexit.register(ZYGOTE.close)


def record(run_dir: Path) -> dict:
    """A run dir's metrics.json."""
    return json.loads((run_dir / "metrics.json").read_text())


def history(run_dir: Path) -> list[dict]:
    """A run dir's history.csv, one dict of strings per epoch (compared as written: exact)."""
    import csv

    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def pause_env(marks: Path, at: str, run: str | None = None, **extra) -> dict:
    """Environment that holds a training job before batch B of epoch E (``at="E:B"``) until it
    catches a preemption signal or ``marks/go`` exists (tests/pause_hook/sitecustomize.py)."""
    marks.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        PYTHONPATH=str(ROOT / "tests" / "pause_hook"),
        SENET_TEST_PAUSE=at,
        SENET_TEST_PAUSE_DIR=str(marks),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if run:
        env["SENET_TEST_PAUSE_RUN"] = run
    return env


def wait_paused(marks: Path, proc: subprocess.Popen | Running, count: int = 1) -> list[int]:
    """Wait (on an observable state, not a clock) until ``count`` processes hold at the pause;
    return their pids. Fails at once if the job ends first."""
    import time

    while True:
        pids = sorted(int(p.read_text()) for p in marks.glob("paused.*") if p.read_text())
        if len(pids) >= count:
            return pids
        if proc.poll() is not None:
            raise AssertionError(f"the job ended before it paused: {proc.communicate()}")
        time.sleep(0.02)


def f32_tol(*tensors, ulps: float = 4, n: int = 1) -> float:
    """Absolute tolerance for float32 results computed two ways (other kernels, other op order):
    ``ulps`` units of float32 resolution at the largest magnitude compared, grown by sqrt(n) for
    a reduction over n terms. E.g. |values| <= 2.5, n = 81: 4 * 1.19e-7 * 2.5 * 9 = 1.1e-5."""
    import torch

    scale = max(t.detach().abs().max().item() for t in tensors)
    return ulps * torch.finfo(torch.float32).eps * scale * n**0.5


@pytest.fixture
def compose_cfg():
    """Compose the primary config in-process, as Hydra would for one job (from the conf/ dir, so
    the resolvers its hydra node uses are registered here: senet_ablate.run.rows)."""
    import senet_ablate.run.rows  # noqa: F401

    def _compose(*overrides: str, hydra: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)

    yield _compose
    GlobalHydra.instance().clear()


SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def cut_cifar(out: Path, train: int, test: int) -> Path:
    """A real ImageFolder tree cut from the shared CIFAR-10 JPEG archive into ``out``: the first ``train``
    and ``test`` images of each class (the archive itself is never copied into the project)."""
    import tarfile

    if not SHARED_CIFAR.exists():
        pytest.skip(f"shared CIFAR-10 JPEG archive not found at {SHARED_CIFAR}")
    keep = {"train": train, "test": test}
    with tarfile.open(SHARED_CIFAR) as tar:
        for m in tar:
            parts = m.name.split("/")  # cifar10-jpeg/<split>/<class>/NNNN.jpg
            if m.isfile() and len(parts) == 4 and int(parts[3].split(".")[0]) < keep[parts[1]]:
                dest = out / parts[1] / parts[2] / parts[3]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
    return out


@pytest.fixture(scope="session")
def cifar_jpeg(tmp_path_factory):
    """A small real tree: 20 train and 5 test images per class."""
    return cut_cifar(tmp_path_factory.mktemp("cifar10-jpeg"), 20, 5)


def shared_across_workers(tmp_path_factory, name: str, make) -> Path:
    """A directory ``make(path)`` fills once per test session, even when pytest-xdist runs it in several
    worker processes: the first to take the lock builds it, the others wait on the lock and read it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # the workers' common dir
    where, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            where.mkdir(parents=True, exist_ok=True)
            make(where)
            done.touch()
    return where


@pytest.fixture(scope="session")
def quick_sweep(tmp_path_factory):
    """A real 3-row x 2-seed training sweep (2 epochs) on digits, reported with --html; read-only for the
    tests that use it, so it is trained once for the whole session."""

    def make(cwd: Path) -> None:
        run_cli("run.app", "-m", "experiment=quickstart", "recipe.epochs=2", cwd=cwd)
        run_cli("study.cli", "runs/quickstart", "--html", cwd=cwd)

    return shared_across_workers(tmp_path_factory, "quick_sweep", make) / "runs/quickstart"


def squash(text: str) -> str:
    """``text`` with runs of spaces as one: a padded Markdown table reads like an unpadded one."""
    return re.sub(r" {2,}", " ", text)


def table_row(text: str, label: str) -> list[str]:
    """The stripped cells of the first Markdown table line whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells
    raise AssertionError(f"no table row {label!r} in:\n{text}")
