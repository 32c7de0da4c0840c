"""``python -m hint_lightning.study NAME``."""

from hint_lightning.study.cli import main

main()
