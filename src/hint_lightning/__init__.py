"""hint-lightning: HINT (Human Importance-aware Network Tuning) on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
