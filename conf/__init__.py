"""senet-ablate's configs, installed as the package ``senet_ablate.conf`` (Hydra: pkg://senet_ablate.conf)."""
