"""Roles add up, and one function refuses what a role may not do."""

import pytest

from core.errors import InputError, PermissionDenied
from core.release.roles import Account, Permission, Role, allowed, require


@pytest.mark.parametrize("text", ["product manager", "Product_Manager", "product-manager"])
def test_role_names_are_read_loosely(text):
    assert Role.parse(text) is Role.PRODUCT_MANAGER


def test_an_unknown_role_names_the_known_ones():
    with pytest.raises(InputError, match="viewer, merchandiser, product_manager, admin"):
        Role.parse("owner")


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_a_permission_belongs_to_its_role_and_every_role_above(permission, role):
    assert allowed(Account("someone", role), permission) == (role >= permission.least_role)


@pytest.mark.parametrize(
    "permission", [Permission.PUBLISH, Permission.ROLLBACK, Permission.MANAGE_USERS, Permission.FORGET_USER]
)
def test_a_viewer_is_refused_with_the_role_it_needs(permission):
    with pytest.raises(PermissionDenied, match=f"needs the {permission.least_role.label} role"):
        require(Account("vic", Role.VIEWER), permission)


def test_nobody_signed_in_is_asked_to_sign_in():
    with pytest.raises(PermissionDenied, match="sign in"):
        require(None, Permission.VIEW)


def test_a_one_time_password_session_may_do_nothing_yet():
    with pytest.raises(PermissionDenied, match="change your one-time password"):
        require(Account("admin", Role.ADMIN, must_change_password=True), Permission.VIEW)


def test_require_returns_the_actor():
    mia = Account("mia", Role.MERCHANDISER)
    assert require(mia, Permission.PUBLISH) is mia
