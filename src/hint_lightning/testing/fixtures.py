"""Moved: :mod:`hint_lightning.prepare.fixture.tree`."""

from __future__ import annotations

from hint_lightning.prepare.fixture.tree import (
    ANSWER_CLUSTER,
    FIXTURE_MIN_ANSWER_COUNT,
    write_fixture_tree,
)

__all__ = [
    "ANSWER_CLUSTER",
    "FIXTURE_MIN_ANSWER_COUNT",
    "write_fixture_tree",
]
