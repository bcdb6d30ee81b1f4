"""Your own code by its dotted path (``_target_``), as Hydra's convention names it: an attention
module (``se.module``), a backbone builder (``model._target_``), a dataset (``data._target_``).
``pkgutil.resolve_name`` reads both ``pkg.module.Name`` and ``pkg.module:Name.attr``: the core
never needs Hydra to find your code."""

from __future__ import annotations

import pkgutil

from .errors import ConfigError


def import_object(path: object, key: str) -> object:
    """What ``path`` (``package.module.Name`` or ``package.module:Name.attr``) names; a ConfigError
    naming ``key`` when it cannot be found."""
    if not isinstance(path, str) or not ("." in path or ":" in path):
        raise ConfigError(f"{key}={path!r} must be a dotted path such as my_pkg.attention.MyGate")
    try:
        return pkgutil.resolve_name(path)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"{key}={path!r} cannot be imported ({type(e).__name__}: {e}); is your package installed "
            "(pip install -e .) or on PYTHONPATH?"
        ) from None
