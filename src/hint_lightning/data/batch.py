"""The batch contract shared by every VQA DataModule and the VQA LightningModule.

A VQA batch is a plain ``dict[str, Tensor]`` (plain dicts move to devices and pickle across
DataLoader workers without any custom code). ``B`` is the batch size, ``N`` the number of
proposals (padded to the largest image in the batch), ``D`` the proposal feature size, ``T`` the
question length in tokens and ``A`` the number of candidate answers.

=======================  ===========  =======  =====================================================
key                      shape        dtype    meaning
=======================  ===========  =======  =====================================================
``features``             [B, N, D]    float    proposal features (zeros for padded proposals)
``boxes``                [B, N, 4]    float    proposal boxes x1, y1, x2, y2, normalized to [0, 1]
``proposal_mask``        [B, N]       bool     True for real proposals, False for padding
``question_tokens``      [B, T]       long     token ids, 0 is padding (right-padded)
``targets``              [B, A]       float    soft training targets in [0, 1]
``answer_scores``        [B, A]       float    official VQA accuracy of predicting each candidate
``answer_type``          [B]          long     index into :data:`ANSWER_TYPES`
``human_importance``     [B, N]       float    human importance per proposal (0 where absent)
``has_importance``       [B]          bool     whether the question has human importance
``question_id``          [B]          long     the dataset's question id
=======================  ===========  =======  =====================================================

``answer_scores`` lets evaluation compute the official accuracy of any prediction by indexing:
the accuracy of predicting answer ``a`` for question ``b`` is ``answer_scores[b, a]``, which was
computed once with :func:`hint_lightning.text.answer_scores.vqa_accuracy` against the human
answers (all answers outside the vocabulary score 0 because they can never be predicted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hint_lightning.text.answers import ANSWER_TYPES as ANSWER_TYPES  # the batch's answer_type

FEATURES: Final = "features"
BOXES: Final = "boxes"
PROPOSAL_MASK: Final = "proposal_mask"
QUESTION_TOKENS: Final = "question_tokens"
TARGETS: Final = "targets"
ANSWER_SCORES: Final = "answer_scores"
ANSWER_TYPE: Final = "answer_type"
HUMAN_IMPORTANCE: Final = "human_importance"
HAS_IMPORTANCE: Final = "has_importance"
QUESTION_ID: Final = "question_id"

VQA_BATCH_KEYS: Final[tuple[str, ...]] = (
    FEATURES,
    BOXES,
    PROPOSAL_MASK,
    QUESTION_TOKENS,
    TARGETS,
    ANSWER_SCORES,
    ANSWER_TYPE,
    HUMAN_IMPORTANCE,
    HAS_IMPORTANCE,
    QUESTION_ID,
)


@dataclass(frozen=True)
class VQADataInfo:
    """What a model needs to know about a prepared VQA dataset.

    Every VQA DataModule exposes one as ``datamodule.info`` once ``prepare_data()`` and
    ``setup()`` have run; ``train(cfg)`` passes its sizes to the model.

    Attributes:
        answers: the answer vocabulary; class index ``a`` is ``answers[a]``.
        tokens: the question-token vocabulary; index 0 is padding, 1 is unknown.
        feature_dim: D, the size of one proposal feature vector.
        max_proposals: the largest N an item can have.
        name: a short dataset name for tables and logs.
    """

    answers: tuple[str, ...]
    tokens: tuple[str, ...]
    feature_dim: int
    max_proposals: int
    name: str = "vqa"

    @property
    def num_answers(self) -> int:
        """A, the number of candidate answers."""
        return len(self.answers)

    @property
    def vocab_size(self) -> int:
        """The number of question tokens, padding and unknown included."""
        return len(self.tokens)
