"""Which prepared files a DataModule reads, and the command that writes them.

The paths come from :class:`hint_lightning.stores.layout.StoreLayout`; ``prepare_data`` of the
VQA and COCO DataModules calls :func:`check_prepared` / :func:`check_prepared_coco`, which
name every missing file and the ``python -m hint_lightning.prepare`` command.
"""

from __future__ import annotations

from pathlib import Path

from hint_lightning.stores.layout import COCO_REFERENCE_SPLITS, COCO_SPLITS, SPLITS, StoreLayout

__all__ = [
    "check_prepared",
    "check_prepared_coco",
    "coco_prepare_command",
    "coco_prepared_files",
    "prepare_command",
    "prepared_files",
]


def prepared_files(data_dir: str | Path, dataset: str, features: str) -> dict[str, Path]:
    """The prepared files a :class:`VQADataModule` needs (``glove.npy`` is optional, not here).

    Args:
        data_dir: Root data folder (holds ``prepared/``).
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        features: Feature store name (``prepared/features/<features>.h5``).

    Returns:
        Role -> path: ``features``, ``answers``, ``tokens``, ``fit`` and ``fit_importance``
        (the store train and val come from), ``test`` and ``test_importance``.

    Example:
        >>> files = prepared_files("data", "vqa_v2", "trainval_36")
        >>> files["features"].as_posix(), files["test"].as_posix()
        ('data/prepared/features/trainval_36.h5', 'data/prepared/vqa/vqa_v2/val.h5')
    """
    layout = StoreLayout(data_dir)
    fit, test = SPLITS[dataset]
    return {
        "features": layout.feature_store(features),
        "answers": layout.answers(dataset),
        "tokens": layout.tokens(dataset),
        "fit": layout.split_store(dataset, fit),
        "fit_importance": layout.importance_store(dataset, fit),
        "test": layout.split_store(dataset, test),
        "test_importance": layout.importance_store(dataset, test),
    }


def prepare_command(dataset: str, data_dir: str | Path, features: str = "trainval_36") -> str:
    """The command that writes the prepared files of ``dataset``.

    Args:
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        data_dir: Root data folder.
        features: Feature store name (``--features`` is added unless it is the default).

    Example:
        >>> prepare_command("vqacp_v2", "data")
        'python -m hint_lightning.prepare vqacp_v2 --data-dir data'
        >>> prepare_command("vqa_v2", "data", "trainval_adaptive")
        'python -m hint_lightning.prepare vqa_v2 --data-dir data --features trainval_adaptive'
    """
    option = "" if features == "trainval_36" else f" --features {features}"
    return f"python -m hint_lightning.prepare {dataset} --data-dir {data_dir}{option}"


def check_prepared(data_dir: str | Path, dataset: str, features: str) -> None:
    """Raises unless every prepared file of :func:`prepared_files` exists.

    Raises:
        FileNotFoundError: Naming every missing file and the command that writes them.
    """
    files = prepared_files(data_dir, dataset, features).values()
    missing = [path for path in files if not path.is_file()]
    if missing:
        listed = "\n".join(f"  {path}" for path in missing)
        raise FileNotFoundError(
            f"the prepared {dataset} data is incomplete; missing:\n{listed}\n"
            f"write them (from the raw downloads under {Path(data_dir) / 'raw'}) with:\n"
            f"  {prepare_command(dataset, data_dir, features)}"
        )


def coco_prepared_files(data_dir: str | Path, family: str, features: str) -> dict[str, Path]:
    """The prepared files a :class:`COCOCaptionDataModule` needs, by role.

    Example:
        >>> files = coco_prepared_files("data", "robust", "trainval_36")
        >>> files["test"].as_posix(), files["importance"].as_posix()
        ('data/prepared/coco/robust/test.h5', 'data/prepared/coco/importance.h5')
    """
    layout = StoreLayout(data_dir)
    files = {
        "features": layout.feature_store(features),
        "vocab": layout.coco_vocab(family),
        **{split: layout.coco_captions(family, split) for split in COCO_SPLITS},
        **{f"{s}_references": layout.coco_references(family, s) for s in COCO_REFERENCE_SPLITS},
        "importance": layout.coco_importance(),
    }
    return {role: Path(path) for role, path in files.items()}


def coco_prepare_command(data_dir: str | Path, features: str = "trainval_36") -> str:
    """The command that writes the prepared COCO files.

    Example:
        >>> coco_prepare_command("data")
        'python -m hint_lightning.prepare coco --data-dir data'
    """
    option = "" if features == "trainval_36" else f" --features {features}"
    return f"python -m hint_lightning.prepare coco --data-dir {data_dir}{option}"


def check_prepared_coco(data_dir: str | Path, family: str, features: str) -> None:
    """Raises unless every file of :func:`coco_prepared_files` exists.

    Raises:
        FileNotFoundError: naming every missing file and the command that writes them.
    """
    missing = [
        p for p in coco_prepared_files(data_dir, family, features).values() if not p.is_file()
    ]
    if missing:
        listed = "\n".join(f"  {path}" for path in missing)
        raise FileNotFoundError(
            f"the prepared COCO captioning data ({family} split) is incomplete; missing:\n"
            f"{listed}\nwrite them (from the raw downloads under {Path(data_dir) / 'raw'}) "
            f"with:\n  {coco_prepare_command(data_dir, features)}"
        )
