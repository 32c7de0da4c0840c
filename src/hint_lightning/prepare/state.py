"""Moved: :mod:`hint_lightning.stores.prepare_state`."""

from __future__ import annotations

from hint_lightning.stores.prepare_state import (
    LEDGER_NAME,
    BuildLedger,
    describe_sources,
    file_digest,
    file_record,
    h5_digest,
)

__all__ = [
    "LEDGER_NAME",
    "BuildLedger",
    "describe_sources",
    "file_digest",
    "file_record",
    "h5_digest",
]
