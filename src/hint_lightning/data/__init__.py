"""DataModules and datasets that read the stores (:mod:`hint_lightning.stores`)."""
