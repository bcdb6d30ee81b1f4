"""The study room: run records become tables, figures, dashboards (``senet-report``).

``collect`` (records to a frame), ``grouping`` (rows and studies), ``inference`` and ``compare``
(the statistics of a comparison), ``sequential`` (adaptive looks), ``tables``, ``plots``,
``dashboard``, ``status`` and ``report`` (the CLI). Reads only the record format
(``senet_ablate.records``): imports neither torch nor Hydra.
"""
