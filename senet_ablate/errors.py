"""The one error type users see: a bad config or bad input, reported without a traceback."""
from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """A config value or input that cannot work; the message names the key and what is valid.

    Subclassing Hydra's compact exception makes Hydra print only this message (exit code 1).
    """
