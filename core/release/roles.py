"""Roles, permissions and the one check every core function makes: ``require(actor, Permission.X)``.

Roles are cumulative: viewer < merchandiser < product manager < admin. A permission names the least
role that holds it. Pages hide what a role may not use, but the check that counts is the one inside the
core function, so the CLI, a test or a page built later cannot skip it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from core.errors import InputError, PermissionDenied


class Role(IntEnum):
    VIEWER = 1
    MERCHANDISER = 2
    PRODUCT_MANAGER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")

    @property
    def key(self) -> str:
        """The form stored in ``app_users.role``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str | Role) -> Role:
        if isinstance(text, Role):
            return text
        key = str(text).strip().lower().replace(" ", "_").replace("-", "_")
        if key.upper() not in cls.__members__:
            names = ", ".join(r.key for r in cls)
            raise InputError(f"role '{text}' is not one of {names}", fix="pick one of those roles")
        return cls[key.upper()]


class Permission(Enum):
    """(least role, what the action is, for the refusal message)."""

    VIEW = (Role.VIEWER, "view the overview, previews and explanations")
    SEE_SHOPPER_IDS = (Role.MERCHANDISER, "see shopper ids unmasked")
    EDIT_RULES = (Role.MERCHANDISER, "save a rule set")
    PUBLISH = (Role.MERCHANDISER, "publish, schedule or cancel a release")
    ROLLBACK = (Role.MERCHANDISER, "roll back to an earlier release")
    READ_AUDIT_LOG = (Role.MERCHANDISER, "read the audit log")
    AUDIT = (Role.PRODUCT_MANAGER, "run the bias audit and exports")
    INGEST = (Role.ADMIN, "load data into the store")
    TRAIN = (Role.ADMIN, "train a model")
    ACTIVATE_MODEL = (Role.ADMIN, "activate a model run for the draft")
    MANAGE_USERS = (Role.ADMIN, "manage accounts and roles")
    FORGET_USER = (Role.ADMIN, "erase a shopper's data")

    @property
    def least_role(self) -> Role:
        return self.value[0]

    @property
    def doing(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Account:
    """A signed-in account: who acts. Made by ``core.release.auth`` from a password, a session, an OIDC
    identity or a token; pages and the CLI pass it to every core function that changes something."""

    username: str
    role: Role
    email: str | None = None
    must_change_password: bool = False

    def may(self, permission: Permission) -> bool:
        return not self.must_change_password and self.role >= permission.least_role


# the actor of what the machine does by itself (the first run's demo shop, model and first release)
SYSTEM = Account("system", Role.ADMIN)


def require(actor: Account | None, permission: Permission, con=None) -> Account:
    """Return ``actor`` if it may do ``permission``, else raise ``PermissionDenied``.

    With ``con`` (the caller's transaction) the role is read again from ``app_users``, so an account
    demoted or disabled since it signed in is refused at once, and a hand-made ``Account`` is worth nothing.
    """
    if actor is None:
        raise PermissionDenied(f"sign in to {permission.doing}")
    if actor.must_change_password:
        raise PermissionDenied(
            f"{actor.username}: change your one-time password before you {permission.doing}"
        )
    role = actor.role
    if con is not None and actor is not SYSTEM:
        rows = con.execute(
            "SELECT role, disabled FROM app_users WHERE username = ?", [actor.username]
        ).fetchall()
        if not rows or rows[0][1]:
            raise PermissionDenied(f"account '{actor.username}' is disabled or does not exist")
        role = Role.parse(rows[0][0])
    if role < permission.least_role:
        raise PermissionDenied(
            f"{actor.username} ({role.label}) may not {permission.doing}: that needs the "
            f"{permission.least_role.label} role — ask an admin"
        )
    return actor


def allowed(actor: Account | None, permission: Permission) -> bool:
    """What a page asks before showing a control (the core function checks again)."""
    return actor is not None and actor.may(permission)
