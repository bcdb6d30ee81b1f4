"""senet-ablate's configs, installed as the package ``senet_ablate.conf`` (Hydra: pkg://senet_ablate.conf).

Importing it registers the OmegaConf resolvers the configs use (``senet_run_name``,
``senet_not_in_dirname``: ``senet_ablate/run/rows.py``), so that composing them through
``initialize_config_module("senet_ablate.conf")`` works without the ``senet-ablate`` entry point."""

from senet_ablate.run import rows  # noqa: F401  (registers the resolvers)
