"""senet-ablate's Hydra sweeper (``hydra/sweeper: rows``, the default of ``conf/config.yaml``)."""
