"""Test hook: hold a training job at a chosen step until the test has acted, so that tests of
preemption, kills and corrupt files never race the machine.

Put this directory on PYTHONPATH (Python imports ``sitecustomize`` at start-up, also in the
processes that torchrun and submitit start) and set

    SENET_TEST_PAUSE=E:B          before training batch B (0-based) of epoch E (1-based)
    SENET_TEST_PAUSE_DIR=DIR      where the hook writes ``paused.<pid>`` once it holds
    SENET_TEST_PAUSE_RUN=TEXT     optional: only in the job whose run dir contains TEXT

The job then waits until a preemption signal has been caught (its PreemptionGuard saw it) or
the file ``DIR/go`` exists, and goes on. Nothing here changes what the job computes.
"""

import os

if os.environ.get("SENET_TEST_PAUSE"):
    import importlib.abc
    import importlib.util
    import sys
    import time
    from pathlib import Path

    EPOCH, BATCH = (int(v) for v in os.environ["SENET_TEST_PAUSE"].split(":"))
    WHERE = Path(os.environ["SENET_TEST_PAUSE_DIR"])
    guards = []

    class _AfterImport(importlib.abc.MetaPathFinder):
        """Patches a module right after the job first imports it: a process that never does (torchrun's
        agent, submitit's watcher, a job that is not a detector's) never imports it for the hook."""

        def __init__(self, patches: dict) -> None:
            self.patches = patches

        def find_spec(self, name, path, target=None):
            if name not in self.patches:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            run, patch = spec.loader.exec_module, self.patches.pop(name)

            def exec_module(module):
                run(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    def _remember_guards(distributed) -> None:
        enter = distributed.PreemptionGuard.__enter__

        def __enter__(self):
            guards.append(self)
            return enter(self)

        distributed.PreemptionGuard.__enter__ = __enter__

    def _this_run() -> bool:
        want = os.environ.get("SENET_TEST_PAUSE_RUN")
        if not want:
            return True
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.initialized() and want in HydraConfig.get().runtime.output_dir

    def _hold() -> None:
        (WHERE / f"paused.{os.getpid()}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 600
        while not (guards and guards[-1].signum) and not (WHERE / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("test pause hook: nothing released the job within 600 s")
            time.sleep(0.01)

    def _wrap(cls):
        original = cls.__iter__

        def __iter__(self):
            b = self.batches
            if not (b.shuffle and b.epoch + 1 == EPOCH and b.start <= BATCH < len(b) and _this_run()):
                yield from original(self)
                return
            inner = None
            for k in range(b.start, len(b)):
                if k == BATCH:
                    _hold()
                if inner is None:  # a streamed loader starts its workers only now
                    inner = original(self)
                yield next(inner)

        cls.__iter__ = __iter__

    sys.meta_path.insert(
        0,
        _AfterImport(
            {
                "senet_ablate.distributed": _remember_guards,
                "senet_ablate.data": lambda data: (_wrap(data.TensorLoader), _wrap(data.StreamLoader)),
                "senet_ablate.detect.loop": lambda loop: _wrap(loop.DetLoader),  # task=detect
            }
        ),
    )
