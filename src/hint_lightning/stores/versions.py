"""The format version of every prepared file, in one place.

A reader refuses a store whose ``format_version`` attribute (or JSON ``version`` field) differs
from the constant here, naming the file and the command that rebuilds it; a writer stamps the
constant. Bump a constant when the content or the layout of its store changes. Adding the
content checksums (:mod:`hint_lightning.stores.checksum`) did not change any version: stores
written before them still load (see ``docs/data_layers.md``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CAPTION_STORE_VERSION",
    "COCO_IMPORTANCE_VERSION",
    "COCO_REFERENCES_VERSION",
    "COCO_REPORT_VERSION",
    "COCO_VOCAB_VERSION",
    "EASYVQA_STORE_VERSION",
    "FEATURE_STORE_VERSION",
    "IMPORTANCE_STORE_VERSION",
    "LEDGER_VERSION",
    "SPLIT_STORE_VERSION",
]

FEATURE_STORE_VERSION: Final = 1
"""``prepared/features/<variant>.h5`` (:mod:`hint_lightning.stores.features`)."""
SPLIT_STORE_VERSION: Final = 1
"""``prepared/vqa/<dataset>/<split>.h5`` (:mod:`hint_lightning.stores.vqa_questions`)."""
IMPORTANCE_STORE_VERSION: Final = 1
"""``prepared/vqa/<dataset>/<split>_importance.h5`` (:mod:`.vqa_importance`)."""
CAPTION_STORE_VERSION: Final = 1
"""``prepared/coco/<family>/<split>.h5`` (:mod:`hint_lightning.stores.captions`)."""
COCO_IMPORTANCE_VERSION: Final = 1
"""``prepared/coco/importance.h5`` (:mod:`hint_lightning.stores.coco_importance`)."""
COCO_VOCAB_VERSION: Final = 1
"""``prepared/coco/<family>/vocab.json`` (recorded in the prepare ledger's stamp)."""
COCO_REFERENCES_VERSION: Final = 1
"""``prepared/coco/<family>/<split>_references.json`` (recorded in the ledger's stamp)."""
COCO_REPORT_VERSION: Final = 1
"""``prepared/coco/coco_report.json`` (its ``version`` field)."""
EASYVQA_STORE_VERSION: Final = 1
"""``<data_dir>/easyvqa_cp/easyvqa_cp_<digest>.h5`` (:mod:`hint_lightning.stores.easyvqa`)."""
LEDGER_VERSION: Final = 1
"""``prepare_state.json`` of each prepared folder (:mod:`hint_lightning.stores.prepare_state`)."""
