"""How long a homepage is: ``DEFAULT_K`` slots unless a caller asks for another length, never more than
``SLOT_MAX``. The pages, the rule validation and the pipeline all read these two numbers."""

DEFAULT_K = 24  # slots on a homepage (the preview, the audit, the storefront)
DEFAULT_M = 500  # candidates the model proposes per shopper before the rules
SLOT_MAX = 48  # the longest homepage anyone may ask for, and the last slot a rule may name
