"""From a job's config to the plain PyTorch objects the tasks use: the attention spec, the model
(optionally with published weights), the weights' eval preprocessing and the data. The one place
where config nodes meet the core (``se``, ``models``, ``weights``, ``data``)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf, open_dict

from .. import data, distributed, weights
from ..errors import ConfigError
from ..models import NOT_OPTIONS, build_model
from ..se import SESpec
from ..train import Runtime
from . import launch

log = logging.getLogger("senet_ablate")


def se_spec(cfg: DictConfig) -> SESpec | None:
    spec = SESpec.from_config(OmegaConf.to_container(cfg.se, resolve=True))
    return None if spec.plain else spec


def make_model(cfg: DictConfig, device=None, num_classes: int | None = None, state: dict | None = None):
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


def prepare_weights(cfg: DictConfig, meta_model) -> dict | None:
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
    cache_dir=None,
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
