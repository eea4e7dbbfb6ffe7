"""The rule set a new shop starts with, in one place: saved as version 1 by the first run
(``python -m core first-run``), then changed by merchandisers like any other version.

It holds one light calibration rule (Steck, "Calibrated Recommendations", RecSys 2018) that chooses from
every category of the shopper's mix (pool "mix"): the "For you" list follows the mix of the shopper's
top-level categories instead of the model's single strongest interest. The strength was chosen on the demo
shop's validation step (``bench/calibration.py``, docs/BENCHMARKS.md, "Beyond accuracy"): all three targets
met with a margin on the KL, at 1.2 % of HR@10.
"""

from __future__ import annotations

from core.ranking.rule_sets import load_rule_set, save_rule_set
from core.ranking.rules import Rule, RuleSet
from core.release.roles import Account

CALIBRATION_STRENGTH = (
    0.6  # Steck's λ for the default list: the demo shop's KL 0.37 (0.5: 0.46, near the bar)
)
DEFAULT_NOTE = "first run: the default rule set (a light calibration to each shopper's category mix)"


def default_rule_set(rule_set_id: str = "default") -> RuleSet:
    """The default rules, unsaved (version 0)."""
    calibration = Rule(
        "calibration-default",
        "calibration",
        {"strength": CALIBRATION_STRENGTH, "pool": "mix"},
        note="default: the list follows the shopper's mix of interests",
    )
    return RuleSet(rule_set_id=rule_set_id, version=0, name="default", rules=[calibration])


def ensure_default_rule_set(actor: Account, db_path=None) -> RuleSet:
    """Save the default rules as version 1 when the shop has no saved version yet; otherwise leave the
    saved rules alone. Returns the latest version either way."""
    saved = load_rule_set(db_path=db_path)
    if saved.version:
        return saved
    return save_rule_set(default_rule_set(saved.rule_set_id), 0, actor, DEFAULT_NOTE, db_path=db_path)
