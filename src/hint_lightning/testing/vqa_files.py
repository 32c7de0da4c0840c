"""Moved: :mod:`hint_lightning.prepare.fixture.vqa_files`."""

from __future__ import annotations

from hint_lightning.prepare.fixture.vqa_files import (
    VQA_V2_INFO,
    VQA_V2_LICENSE,
    encode_png,
    make_hat_maps,
    make_vqa_examples,
    write_glove,
    write_hat_folder,
    write_hat_zip,
    write_vqa_v2_annotations,
    write_vqa_v2_questions,
    write_vqacp_annotations,
    write_vqacp_questions,
)

__all__ = [
    "VQA_V2_INFO",
    "VQA_V2_LICENSE",
    "encode_png",
    "make_hat_maps",
    "make_vqa_examples",
    "write_glove",
    "write_hat_folder",
    "write_hat_zip",
    "write_vqa_v2_annotations",
    "write_vqa_v2_questions",
    "write_vqacp_annotations",
    "write_vqacp_questions",
]
