"""senet-ablate: the Squeeze-and-Excitation paper (Hu et al., TPAMI v4) as configurable sweeps.

The Python API (``api.py``; torch alone) loads on first use, so ``import senet_ablate.records.keys`` and
the other light modules stay light::

    import senet_ablate
    model = senet_ablate.create_model("resnet50", se=True)   # SE-ResNet-50
    senet_ablate.profile(model)["gflops"]                      # the paper's 3.87
"""

import importlib as _importlib

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "profile"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(_importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*(k for k in globals() if not k.startswith("_")), "__version__", *__all__})
