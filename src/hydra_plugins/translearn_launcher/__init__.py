"""translearn's Hydra launcher plugin (Hydra finds plugins under the ``hydra_plugins`` namespace)."""
