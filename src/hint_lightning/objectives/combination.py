"""Several grounding objectives at once, each with its own weight.

The total training loss is the task loss plus every active objective's weighted term:
``L = task + sum_k weight_k * loss_k``. Each term is computed on its own view of the batch's
context (the rows with human importance for objectives that need it), and every term shares
the context's cache: two objectives that ask for the ground-truth importance get one
computation.

From the command line (``conf/train.yaml``): ``objective=<name>`` chooses one objective as
before; ``+objective@objectives.<name>=<name>`` adds any objective of the ``objective`` group
under ``objectives.<name>`` (any number, each with its own ``objectives.<name>.weight``)::

    python -m hint_lightning.train objective=hint \\
        +objective@objectives.rrr=rrr objectives.rrr.weight=0.5
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor, nn

from hint_lightning.objectives.base import GroundingObjective
from hint_lightning.objectives.context import GroundingContext

__all__ = ["ObjectiveSet", "total"]


class ObjectiveSet(nn.Module):
    """Named grounding objectives whose weighted terms add up.

    Args:
        objectives: name -> objective (the name keys the logs: ``train/loss_<name>``).

    Raises:
        ValueError: for an empty name or an entry that is not a :class:`GroundingObjective`.

    Example:
        >>> from hint_lightning.objectives.hint import HintObjective
        >>> from hint_lightning.objectives.rrr import RRRObjective
        >>> pair = ObjectiveSet({"hint": HintObjective(2.0), "rrr": RRRObjective(0.0)})
        >>> list(pair.active()), sorted(pair.requires)
        (['hint'], ['human_importance', 'importance'])
    """

    def __init__(self, objectives: Mapping[str, GroundingObjective]) -> None:
        super().__init__()
        for name, objective in objectives.items():
            if not name or not isinstance(objective, GroundingObjective):
                raise ValueError(
                    f"objective {name!r} must be a named GroundingObjective, got "
                    f"{type(objective).__name__}"
                )
        self.objectives = nn.ModuleDict(dict(objectives))

    @classmethod
    def build(
        cls,
        objective: GroundingObjective | Mapping[str, GroundingObjective] | None = None,
        objectives: Mapping[str, GroundingObjective] | None = None,
    ) -> ObjectiveSet | None:
        """Combine the single ``objective`` (named after its class's ``name``) and the named
        ``objectives``; None when there are none.

        Raises:
            ValueError: when two objectives would share a name.
        """
        if isinstance(objective, ObjectiveSet):
            named: dict[str, GroundingObjective] = dict(objective.items())
        elif isinstance(objective, Mapping):
            named = dict(objective)
        elif objective is not None:
            named = {objective.name: objective}
        else:
            named = {}
        for name, extra in (objectives or {}).items():
            if name in named:
                raise ValueError(
                    f"two grounding objectives are named {name!r}: give the one under "
                    f"objectives another name (+objective@objectives.<other name>={name})"
                )
            named[name] = extra
        return cls(named) if named else None

    def items(self) -> Iterator[tuple[str, GroundingObjective]]:
        """``(name, objective)`` pairs, in order."""
        for name, objective in self.objectives.items():
            assert isinstance(objective, GroundingObjective)
            yield name, objective

    def active(self) -> dict[str, GroundingObjective]:
        """The objectives with a nonzero weight."""
        return {name: objective for name, objective in self.items() if objective.active}

    @property
    def requires(self) -> frozenset[str]:
        """Everything the active objectives need."""
        needs: set[str] = set()
        for objective in self.active().values():
            needs |= objective.requires
        return frozenset(needs)

    def needed_for(self, has_importance: Tensor) -> dict[str, GroundingObjective]:
        """The active objectives that contribute on a batch (``[R]`` bool ``has_importance``):
        those needing human importance only when some row has it."""
        hinted = bool(has_importance.any())
        return {
            name: objective
            for name, objective in self.active().items()
            if hinted or not objective.needs_human_importance
        }

    def terms(self, ctx: GroundingContext) -> dict[str, Tensor]:
        """Each contributing objective's weighted term on ``ctx`` (name -> scalar)."""
        terms: dict[str, Tensor] = {}
        for name, objective in self.needed_for(ctx.has_importance).items():
            view = ctx.hinted() if objective.needs_human_importance else ctx
            terms[name] = objective(view)
        return terms

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: weight={obj.weight}" for name, obj in self.items())


def total(terms: Mapping[str, Tensor], like: Tensor) -> Tensor:
    """The sum of weighted terms (a zero scalar on ``like``'s device and dtype when none)."""
    result: Tensor | None = None
    for term in terms.values():
        result = term if result is None else result + term
    return like.new_zeros(()) if result is None else result
