"""senet-ablate: the Squeeze-and-Excitation paper (Hu et al., TPAMI v4) as configurable sweeps."""

__version__ = "0.1.0"
