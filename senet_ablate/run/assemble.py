"""From a job's config to the plain PyTorch objects the tasks use: the attention spec, the model
(optionally with published weights), the weights' eval preprocessing and the data. The one place
where config nodes meet the core (``se``, ``models``, ``weights``, ``data``)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from .. import data, distributed, weights
from ..errors import ConfigError
from ..models import NOT_OPTIONS, build_model
from ..se import SESpec
from ..train import Runtime, seed_everything
from . import launch

log = logging.getLogger("senet_ablate")


def se_spec(cfg: DictConfig) -> SESpec | None:
    spec = SESpec.from_config(OmegaConf.to_container(cfg.se, resolve=True))
    return None if spec.plain else spec


def make_model(
    cfg: DictConfig,
    device: str | torch.device | None = None,
    num_classes: int | None = None,
    state: dict | None = None,
) -> nn.Module:
    """The configured backbone; ``state``: weights to load (from :func:`prepare_weights`)."""
    m = cfg.model
    classes = num_classes if num_classes is not None else m.num_classes
    if classes is None:
        raise ConfigError(
            "model.num_classes is null (inferred from the data only when training); "
            "set data.num_classes or model.num_classes"
        )
    options = {k: v for k, v in OmegaConf.to_container(m, resolve=True).items() if k not in NOT_OPTIONS}
    name = m.get("_target_") or m.name  # your own builder (model._target_), else ours by name
    model = build_model(name, se_spec(cfg), classes, device=device, input_size=m.input_size, **options)
    if state is not None:
        model.load_state_dict(state)
    return model


def prepare_weights(cfg: DictConfig, meta_model: nn.Module) -> dict | None:
    """``model.weights`` fetched, renamed and checked against the meta model: before any work,
    a mismatch names the missing, unexpected and mis-shaped keys."""
    source = cfg.model.get("weights")
    if not source:
        return None
    spec = se_spec(cfg)
    model_cfg, se = OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.se, resolve=True)
    keep = None
    if (cfg.get("data") or {}).get("kind") == "detection":  # a detector's trunk: the weights less their head
        from ..detect.model import TRUNK_KEYS, Trunk, taps

        meta_model, keep = Trunk(meta_model, taps(meta_model, cfg.model.name)[0]), lambda k: k.startswith(TRUNK_KEYS)
    state = weights.fitted(
        meta_model, model_cfg, None if spec is None else se, str(source), cfg.model.get("weights_file"), keep
    )
    log.info("weights: %s (%d tensors) fit %s", source, len(state), cfg.model.name)
    return state


@dataclass(frozen=True)
class RngState:
    """The global generators after a seeded CPU build: Python's, NumPy's and torch's CPU one as they
    are, the GPUs' as seeded (a CPU build draws nothing from them)."""

    python: tuple
    numpy: dict
    torch: torch.Tensor
    seed: int

    @classmethod
    def now(cls, seed: int) -> RngState:
        return cls(random.getstate(), np.random.get_state(legacy=False), torch.get_rng_state(), seed)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        torch.cuda.manual_seed_all(self.seed)  # lazy where CUDA is not initialised; nothing without a GPU


@dataclass(frozen=True)
class JobModel:
    """A job's model, built once before any work, so that its stages, SE widths and published weights
    are checked first. ``materialised``: on the CPU, its weights loaded (train: built right after
    seeding, ``rng`` the generators just after, for the training to go on from once its data are
    loaded); otherwise on the meta device, shapes only (``task=profile``, a detector's checks, or a
    training whose classes only the loaded data know: the task builds it then)."""

    module: nn.Module
    materialised: bool
    classes: int | None  # the outputs it was built for
    weights: dict | None = None  # model.weights as our state dict (in ``module`` when materialised)
    rng: RngState | None = None

    def for_classes(self, cfg: DictConfig, num_classes: int) -> nn.Module:
        """The model for the loaded data's ``num_classes``: this one (the generators set back to just after
        its seeded build), or, where only the data knew the classes, built now (from the seed, to train)."""
        if self.materialised and self.classes == num_classes:
            if self.rng is not None:
                self.rng.restore()
            return self.module
        if cfg.task == "train":
            seed_everything(cfg.seed, cfg.deterministic)  # whatever loading the data did, the seed sets the init
        return make_model(cfg, num_classes=num_classes, state=self.weights)


def job_model(cfg: DictConfig, classes: int | None) -> JobModel:
    """The job's model for ``classes`` outputs (None: unknown before loading the data)."""
    analysis_of_a_run = cfg.task == "excitation" and cfg.excitation.run  # the task builds that run's model
    real = (cfg.task == "profile" and cfg.profile.latency) or (
        cfg.task in ("train", "eval", "excitation") and classes and not analysis_of_a_run
    )
    if not real:
        meta = make_model(cfg, device="meta", num_classes=classes or (2 if cfg.task == "train" else None))
        return JobModel(meta, False, classes, prepare_weights(cfg, meta))
    if cfg.task == "train":
        seed_everything(cfg.seed, cfg.deterministic)  # the seed alone sets the init
    module = make_model(cfg, num_classes=classes)
    state = prepare_weights(cfg, module)
    if state is not None:
        module.load_state_dict(state)
    return JobModel(module, True, classes, state, RngState.now(cfg.seed) if cfg.task == "train" else None)


def eval_preprocessing(cfg: DictConfig) -> DictConfig:
    """The data config with the weights' own eval preprocessing (input size, resize, mean/std,
    interpolation; timm/torchvision metadata) unless ``eval.preprocess=data``."""
    if cfg.eval.preprocess not in ("weights", "data"):
        raise ConfigError(f"eval.preprocess={cfg.eval.preprocess!r} is not valid; valid values: weights, data")
    pre = weights.preprocessing(str(cfg.model.weights)) if cfg.eval.preprocess == "weights" else None
    d = cfg.data.copy()
    if pre:
        with open_dict(d):
            d.update(pre)
    return d


def load_data(
    data_cfg: DictConfig,
    batch_size: int,
    eval_batch_size: int,
    rt: Runtime,
    seed: int,
    cache_dir: str | Path | None = None,
    dist: distributed.Dist = distributed.Dist(),
) -> data.Data:
    """The ``data:`` node loaded for this job: worker and decode-process counts resolved here,
    once, from ``data.workers`` and what the launcher allows."""
    workers = data_cfg.get("workers", "auto")
    return data.build(
        data_cfg,
        batch_size,
        eval_batch_size,
        rt.device,
        seed,
        dist.rank,
        dist.world,
        cache_dir=cache_dir,
        workers=launch.data_workers(data_cfg.get("workers", 0)),
        decode_workers=launch.decode_processes(workers),
    )
