"""A quiet console: silence what is not the user's business, keep real warnings.

Every Lightning run prints advertisement tips (``💡 Tip: ... try installing litlogger``) and,
with torch >= 2.10, a deprecation warning from inside Lightning
(```isinstance(treespec, LeafSpec)` is deprecated``) that the user cannot act on.
:func:`quiet_console` drops exactly these; every other message and warning is kept.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["SILENCED_WARNINGS", "quiet_console"]

_TIP_PREFIX = "💡 Tip:"
_RANK_ZERO_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)
"""Loggers Lightning's ``rank_zero_info`` writes to (whichever was imported last)."""

SILENCED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)
"""``(message regex, category)`` of the warnings every run printed, about library internals."""


class _DropTips(logging.Filter):
    """Drop Lightning's advertisement tips."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP_PREFIX)


_FILTER = _DropTips()


def quiet_console() -> None:
    """Install the filters (idempotent; call it at the start of every entry point)."""
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for message, category in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
