"""``VQADataModule``: VQA-CP v2 / VQA v2 over the prepared stores, features read lazily.

Files read (the prepared layout of :mod:`hint_lightning.prepare`, under
``<data_dir>/prepared/``): ``features/<features>.h5``, and in ``vqa/<dataset>/``
``answers.json``, ``tokens.json``, the two split stores with their importance stores
(``vqacp_v2``: ``train``, ``test``; ``vqa_v2``: ``train``, ``val``) and, when it is there,
``glove.npy`` (exposed as :attr:`VQADataModule.word_vectors_path`). Nothing is built here:
:meth:`VQADataModule.prepare_data` only checks that the files exist and names the command that
writes them (``python -m hint_lightning.prepare <dataset> --data-dir <data_dir>``).

Splits (question level; VQA-CP has no validation split, and model selection must never look at
the test split):

=========  =========================================  =========================================
split      ``vqacp_v2``                               ``vqa_v2``
=========  =========================================  =========================================
train      CP-train minus the val carve-out           train2014 minus the val carve-out
val        ``val_fraction`` of CP-train               ``val_fraction`` of train2014
test       CP-test                                    val2014 (the papers' "VQAv2 val" column)
=========  =========================================  =========================================

The carve-out (:func:`carve_validation`) keeps the ``round(val_fraction * Q)`` questions of the
train store with the smallest SplitMix64 hash of ``(val_seed, question_id)``: it is fixed by
``val_seed``, independent of the training seed and of the order of the store, and a question's
side only changes if the set of questions changes. ``hinted_only`` then restricts train (not
val) to the questions with human importance (``has_importance``: the VQA-HAT questions), the
HINT fine-tuning protocol; ``limit_train_questions`` keeps a seeded random subset of train.

Importance: ``importance_source`` picks which array of the importance store the *train*
questions carry as ``human_importance`` (``"human"``, or the controls ``"random"`` and
``"one_minus"``); val and test always carry the human importance, which the grounding metrics
compare against (the convention of :mod:`hint_lightning.data.easyvqa_datamodule`). Questions
without a VQA-HAT map have ``has_importance`` False and zero importance in every split.

Memory: only compact per-question arrays (~240 bytes a question) and the importance rows of the
questions that have them stay in memory (:attr:`VQADataModule.memory_bytes`), as numpy arrays
that forked DataLoader workers share copy-on-write; features are read per batch from the HDF5
store, opened lazily in each worker (:class:`~hint_lightning.data.vqa_dataset.VQASplitDataset`).
The numbers and measurements behind this design: ``docs/data_layers.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from torch.utils.data import Dataset

from hint_lightning.data.batch import VQADataInfo
from hint_lightning.data.carve import carve_validation
from hint_lightning.data.loading import VQADataModuleBase
from hint_lightning.data.prepared import check_prepared, prepare_command, prepared_files
from hint_lightning.data.vqa_dataset import VQASplitDataset
from hint_lightning.stores.feature_batches import BatchFeatureStore
from hint_lightning.stores.layout import SPLITS as STORE_SPLITS
from hint_lightning.stores.vqa_importance import ImportanceRows
from hint_lightning.stores.vqa_importance import read_importance as load_importance
from hint_lightning.stores.vqa_questions import QuestionArrays, read_vocabulary
from hint_lightning.stores.vqa_questions import read_split_store as load_questions

__all__ = [
    "DATASETS",
    "IMPORTANCE_SOURCES",
    "SPLITS",
    "STORE_SPLITS",
    "BatchFeatureStore",
    "ImportanceRows",
    "QuestionArrays",
    "VQADataModule",
    "VQASplitDataset",
    "carve_validation",
    "check_prepared",
    "load_importance",
    "load_questions",
    "prepare_command",
    "prepared_files",
]

DATASETS: Final[tuple[str, ...]] = ("vqacp_v2", "vqa_v2")
"""Accepted values of ``dataset``."""
IMPORTANCE_SOURCES: Final[tuple[str, ...]] = ("human", "random", "one_minus")
"""Accepted values of ``importance_source`` (arrays of the importance store)."""
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "hinted")
"""Accepted split names of :meth:`VQADataModule.question_ids`."""


@dataclass(frozen=True)
class _Loaded:
    """Everything :meth:`VQADataModule.setup` reads, shared by the datasets."""

    store: BatchFeatureStore
    fit: QuestionArrays
    test: QuestionArrays
    rows: dict[str, np.ndarray]
    datasets: dict[str, VQASplitDataset]


class VQADataModule(VQADataModuleBase):
    """VQA-CP v2 or VQA v2 from the prepared stores (see the module docstring).

    Args:
        data_dir: Root data folder (holds ``prepared/``).
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        features: Feature store name under ``prepared/features/`` (``trainval_36`` or
            ``trainval_adaptive``).
        batch_size: Global training batch size (divided by ``trainer.world_size``; must be
            divisible by it).
        eval_batch_size: Global evaluation batch size (divided by the world size, rounded up).
        num_workers: DataLoader worker processes (each opens the feature store itself).
        pin_memory: Passed to the DataLoaders.
        shuffle: Shuffle the training split every epoch (False keeps store order).
        val_fraction: Share of the train store carved out as val, in [0, 1).
        val_seed: Seed of the carve-out and of ``limit_train_questions``.
        hinted_only: Train only on the questions with human importance (HINT fine-tuning).
        importance_source: ``"human"``, ``"random"`` or ``"one_minus"``: the importance of
            the train questions (val and test always carry the human importance).
        limit_train_questions: Keep only this many train questions (a seeded random subset),
            for quick runs; None keeps all.

    Attributes:
        info: The :class:`~hint_lightning.data.batch.VQADataInfo`, once :meth:`setup` ran.
        word_vectors_path: ``glove.npy`` ([V, 300] float32 initial token embeddings) when the
            prepare step wrote it, else None; set by :meth:`setup`.

    Raises:
        ValueError: On an unknown ``dataset`` or ``importance_source``, or out-of-range values.
    """

    def __init__(
        self,
        data_dir: str,
        dataset: str = "vqacp_v2",
        features: str = "trainval_36",
        batch_size: int = 512,
        eval_batch_size: int = 1024,
        num_workers: int = 4,
        pin_memory: bool = False,
        shuffle: bool = True,
        val_fraction: float = 0.05,
        val_seed: int = 0,
        hinted_only: bool = False,
        importance_source: str = "human",
        limit_train_questions: int | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(
            dataset,
            importance_source,
            (batch_size, eval_batch_size),
            num_workers,
            val_fraction,
            limit_train_questions,
        )
        self.save_hyperparameters()
        self.data_dir = str(data_dir)
        self.dataset = dataset
        self.features = features
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.shuffle = shuffle
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.hinted_only = hinted_only
        self.importance_source = importance_source
        self.limit_train_questions = limit_train_questions
        self.info: VQADataInfo | None = None
        self.word_vectors_path: str | None = None
        self._loaded: _Loaded | None = None
        self._device_batch_size = batch_size
        self._device_eval_batch_size = eval_batch_size

    @property
    def files(self) -> dict[str, Path]:
        """The prepared files this module reads (see :func:`prepared_files`)."""
        return prepared_files(self.data_dir, self.dataset, self.features)

    def prepare_data(self) -> None:
        """Checks that the prepared files exist (building them needs the raw downloads).

        Raises:
            FileNotFoundError: Naming every missing file and the command that writes them.
        """
        check_prepared(self.data_dir, self.dataset, self.features)

    def setup(self, stage: str | None = None) -> None:
        """Reads the per-question arrays and importance, and builds the datasets of all splits.

        Idempotent: later calls only recompute the per-process batch sizes.

        Args:
            stage: Lightning stage (all splits are built whatever the stage, so that e.g.
                evaluation can use ``val_dataloader()`` after ``setup("test")``).

        Raises:
            FileNotFoundError: If prepared files are missing (as :meth:`prepare_data`).
            ValueError: If the stores do not match each other or this configuration, or the
                train split is empty.
            KeyError: If a question's image is not in the feature store.
        """
        self._set_batch_sizes()
        if self._loaded is not None:
            return
        self.prepare_data()
        files = self.files
        answers = read_vocabulary(files["answers"])
        tokens = read_vocabulary(files["tokens"])
        store = BatchFeatureStore(files["features"])
        sizes = {"answers": len(answers), "tokens": len(tokens)}
        fit = load_questions(files["fit"], store, self.features, self.dataset, sizes)
        test = load_questions(files["test"], store, self.features, self.dataset, sizes)
        fit_human = self._importance(files["fit_importance"], "human", fit, store)
        rows = {**self._split_rows(fit, fit_human), "test": np.arange(len(test))}
        tables = {
            "train": self._importance(
                files["fit_importance"], self.importance_source, fit, store, fit_human
            ),
            "val": fit_human,
            "test": self._importance(files["test_importance"], "human", test, store),
        }
        datasets = {
            split: VQASplitDataset(
                test if split == "test" else fit, rows[split], tables[split], store, len(answers)
            )
            for split in ("train", "val", "test")
        }
        self._loaded = _Loaded(store=store, fit=fit, test=test, rows=rows, datasets=datasets)
        glove = files["answers"].parent / "glove.npy"
        self.word_vectors_path = str(glove) if glove.is_file() else None
        self.info = VQADataInfo(
            answers=answers,
            tokens=tokens,
            feature_dim=store.feature_dim,
            max_proposals=store.max_boxes,
            name=self.dataset,
        )

    def _importance(
        self,
        path: Path,
        source: str,
        questions: QuestionArrays,
        store: BatchFeatureStore,
        human: ImportanceRows | None = None,
    ) -> ImportanceRows:
        """One importance array of a store (``human`` is reused when ``source`` is human)."""
        if source == "human" and human is not None:
            return human
        return load_importance(path, source, questions.question_id, self.features, store.max_boxes)

    def _split_rows(self, fit: QuestionArrays, human: ImportanceRows) -> dict[str, np.ndarray]:
        """Sorted question rows of train, val and hinted in the train store.

        Args:
            fit: The train store's questions.
            human: Its human importance (``has_importance`` defines hinted).

        Returns:
            ``{"train", "val", "hinted"}`` int64 row arrays.

        Raises:
            ValueError: If the train split is empty.
        """
        val_mask = carve_validation(fit.question_id, self.val_fraction, self.val_seed)
        train = np.flatnonzero(~val_mask)
        hinted = train[human.has_importance[train]]
        if self.hinted_only:
            train = hinted
        limit = self.limit_train_questions
        if limit is not None and limit < len(train):
            rng = np.random.default_rng((self.val_seed, 2))
            train = np.sort(rng.permutation(train)[:limit])
        if len(train) == 0:
            what = "with human importance " if self.hinted_only else ""
            raise ValueError(
                f"no train question {what}in {self.files['fit']} (val_fraction="
                f"{self.val_fraction}, hinted_only={self.hinted_only})"
            )
        return {"train": train, "val": np.flatnonzero(val_mask), "hinted": hinted}

    def teardown(self, stage: str | None = None) -> None:
        """Closes this process's feature-store handle (a later read reopens it)."""
        if self._loaded is not None:
            self._loaded.store.close()

    def _require(self) -> _Loaded:
        """What :meth:`setup` loaded."""
        if self._loaded is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._loaded

    def _split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val or test); loaders come from the base class."""
        return self._require().datasets[split]

    def question_ids(self, split: str) -> np.ndarray:
        """The question ids of a split, in the order of its (unshuffled) dataset.

        Args:
            split: ``"train"`` (exactly what the train loader iterates), ``"val"``,
                ``"test"``, or ``"hinted"`` (the train questions with human importance,
                before ``limit_train_questions``).

        Returns:
            Int64 array of shape [S].
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        loaded = self._require()
        questions = loaded.test if split == "test" else loaded.fit
        return questions.question_id[loaded.rows[split]]

    @property
    def answers(self) -> tuple[str, ...]:
        """The answer vocabulary (class ``a`` is ``answers[a]``); requires :meth:`setup`."""
        if self.info is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.info.answers

    @property
    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the in-memory arrays: per-question arrays and importance rows."""
        loaded = self._require()
        tables = {id(d.importance): d.importance for d in loaded.datasets.values()}
        return {
            "questions": loaded.fit.nbytes + loaded.test.nbytes,
            "importance": sum(t.values.nbytes + t.index.nbytes for t in tables.values()),
        }


def _check_arguments(
    dataset: str,
    importance_source: str,
    batch_sizes: tuple[int, int],
    num_workers: int,
    val_fraction: float,
    limit_train_questions: int | None,
) -> None:
    """Raises ``ValueError`` on an unknown choice or an out-of-range value."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if importance_source not in IMPORTANCE_SOURCES:
        raise ValueError(
            f"importance_source must be one of {IMPORTANCE_SOURCES}, got {importance_source!r}"
        )
    if min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_sizes}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit_train_questions is not None and limit_train_questions < 1:
        raise ValueError(f"limit_train_questions must be >= 1, got {limit_train_questions}")
