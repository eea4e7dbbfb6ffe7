"""Reasons are data: ``Reason(code, rule_id, params)``, one per thing a rule (or the model) did to a slot or
could not do (a conflict). The code is an enum member that carries its own words, so the preview's badges,
the Explain page's sentences and its colours, and the storefront API all read the code, never a string.

Each rule kind declares its codes as a subclass of ``ReasonCode`` (see ``core.ranking.kinds``)::

    class Code(ReasonCode):
        PINNED = ("pin.pinned", "pinned", "pinned to slot {slot} by a merchandiser", "#1F2430", True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ReasonCode(Enum):
    """A reason's code: ``value`` is the stable id (``kind.what``, what the API returns); ``label`` is the
    badge text; ``template`` the sentence, formatted with the reason's params and ``rule``; ``tone`` the
    badge colour; ``places`` says that the rule, not the model, chose the slot's item."""

    def __new__(cls, code: str, label: str, template: str, tone: str = "#F1F2F5", places: bool = False):
        member = object.__new__(cls)
        member._value_ = code
        member.label = label
        member.template = template
        member.tone = tone
        member.places = places
        return member


class Model(ReasonCode):
    """What the model alone did (no rule)."""

    RANKED = ("model", "model", "ranked here by the model", "#F1F2F5")


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    rule_id: str | None = None
    params: dict = field(default_factory=dict, compare=True)

    @property
    def label(self) -> str:
        return self.code.label

    def text(self) -> str:
        """The sentence for people: the code's template with the params (and ``rule``, the rule id)."""
        return self.code.template.format(rule=self.rule_id, **self.params)

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict:
        """The API form: ``{"code": "pin.pinned", "rule_id": "pin-1", "params": {"slot": 1}}``."""
        return {"code": self.code.value, "rule_id": self.rule_id, "params": dict(self.params)}


MODEL = Reason(Model.RANKED)
