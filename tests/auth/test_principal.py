"""Principals: which roles need an institution, and messages without personal values."""

import pytest

from hub.auth.principal import INSTITUTION_ROLES, MAX_ID_LENGTH, ROLES, Principal


@pytest.mark.parametrize("role", INSTITUTION_ROLES)
def test_institution_roles_require_inst(role: str) -> None:
    with pytest.raises(ValueError, match="requires an institution"):
        Principal(role=role, sub="svc-1")
    assert Principal(role=role, sub="svc-1", inst="H001").inst == "H001"


@pytest.mark.parametrize("role", [r for r in ROLES if r not in INSTITUTION_ROLES])
def test_other_roles_do_not_need_inst(role: str) -> None:
    assert Principal(role=role, sub="someone").inst is None


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"role": "root", "sub": "x"}, "role must be one of"),
        ({"role": "patient", "sub": ""}, "sub must be a non-empty string"),
        ({"role": "admin", "sub": "x" * (MAX_ID_LENGTH + 1)}, "sub is longer"),
        ({"role": "admin", "sub": "a\nb"}, "sub contains control characters"),
        ({"role": "hospital", "sub": "x", "inst": ""}, "inst must be a non-empty string"),
        ({"role": "agency", "sub": "x", "inst": 7}, "inst must be a non-empty string"),
    ],
)
def test_invalid_principals(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Principal(**kwargs)  # type: ignore[arg-type]


def test_messages_do_not_echo_personal_values() -> None:
    with pytest.raises(ValueError) as info:
        Principal(role="patient", sub="P-12345\x00")
    assert "P-12345" not in str(info.value)
