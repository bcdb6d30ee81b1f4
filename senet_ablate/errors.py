"""The one error type users see: a bad config or bad input, reported without a traceback.

Plain Python (a ``ValueError``), so that the core (``se``, ``models``, ``complexity``,
``weights``) imports with torch alone; the Hydra entry point (``run/app.py``) turns it into Hydra's
compact one-line error at its edge.
"""


class ConfigError(ValueError):
    """A config value or input that cannot work; the message names the key and what is valid."""
