"""The run room, the Hydra edge: a config becomes a job and its record.

``app`` (the ``senet-ablate`` entry point, config checks), ``tasks`` (train / profile / eval /
excitation / detect jobs), ``assemble`` (model, weights and data from a config), ``launch`` (CPU
threads and loader workers per job), ``rows`` (study rows and run-dir names), ``adaptive``
(``hydra.sweeper.until=verdict``), ``tracking`` (wandb), ``callbacks`` (the end-of-sweep table).
It uses the core and the study room; neither imports it.
"""
