"""``python -m hint_lightning.prepare``: see :mod:`hint_lightning.prepare.cli`."""

from __future__ import annotations

from hint_lightning.prepare.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
