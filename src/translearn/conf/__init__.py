"""Hydra's config package: @hydra.main(config_path="conf") in an installed translearn reads it through
importlib.resources, and Hydra takes a config package to be one with an ``__init__.py``."""
