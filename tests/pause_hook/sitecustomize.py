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
    import time
    from pathlib import Path

    from senet_ablate import data, distributed

    EPOCH, BATCH = (int(v) for v in os.environ["SENET_TEST_PAUSE"].split(":"))
    WHERE = Path(os.environ["SENET_TEST_PAUSE_DIR"])
    guards = []
    _enter = distributed.PreemptionGuard.__enter__

    def _remember(self):
        guards.append(self)
        return _enter(self)

    distributed.PreemptionGuard.__enter__ = _remember

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

    _wrap(data.TensorLoader)
    _wrap(data.StreamLoader)
    from senet_ablate.detect import loop as detect_loop

    _wrap(detect_loop.DetLoader)  # task=detect
