"""Who is an admin is decided on purpose: a caller made without saying so is not one."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from volcimage.auth.visibility import ANONYMOUS, Caller, get_caller


def test_a_caller_is_no_admin_unless_made_one() -> None:
    assert Caller("someone").is_admin is False
    assert Caller("alice", user_id=3).is_admin is False
    assert Caller("api-key", is_admin=True).is_admin is True
    assert ANONYMOUS.is_admin is True, "open mode: everyone may do everything"


def test_a_request_the_access_layer_did_not_mark_is_a_guest() -> None:
    connection = HTTPConnection({"type": "http", "headers": [], "state": {}})
    caller = get_caller(connection)
    assert caller.is_admin is False and caller.user_id is None and not caller.by_cookie
