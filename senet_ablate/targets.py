"""Your own code by its dotted path (``_target_``), as Hydra's convention names it: an attention
module (``se.module``), a backbone builder (``model._target_``), a dataset (``data._target_``).
Plain ``importlib``: the core never needs Hydra to find your code."""

from __future__ import annotations

import importlib

from .errors import ConfigError


def import_object(path, key: str):
    """What ``path`` (``package.module.name``) names; a ConfigError naming ``key`` when it cannot be found."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{key}={path!r} must be a dotted path such as my_pkg.attention.MyGate")
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"{key}={path!r} cannot be imported ({type(e).__name__}: {e}); is your package installed "
            "(pip install -e .) or on PYTHONPATH?"
        ) from None
