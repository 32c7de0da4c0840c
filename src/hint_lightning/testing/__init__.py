"""Test support: the fault-injection callback of the resume tests (the tiny raw-tree writers
moved to :mod:`hint_lightning.prepare.fixture`; the modules here re-export them)."""
