"""The exception tree: HTTP headers travel with an error, also across process boundaries."""

from __future__ import annotations

import pickle

import pytest

from yivideo.errors import (
    ConfigError,
    NodeNotFound,
    NotFound,
    RateLimited,
    Unauthorized,
    YiVideoError,
)
from yivideo.security import auth, ratelimit


@pytest.mark.parametrize("err, status, headers", [
    (Unauthorized("invalid API key"), 401, {"WWW-Authenticate": 'Bearer realm="yivideo"'}),
    (RateLimited("slow down", 7), 429, {"Retry-After": "7"}),
    (NotFound("no such workflow"), 404, {}),
    (NodeNotFound("x.y", ["a.b"]), 422, {}),
])
def test_errors_carry_their_headers_through_pickle(err, status, headers) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and isinstance(back, YiVideoError)
    assert back.http_status == status and back.headers == headers
    assert (back.message, back.details, back.code) == (err.message, err.details, err.code)


def test_rate_limited_keeps_retry_after() -> None:
    back = pickle.loads(pickle.dumps(RateLimited("slow down", 3)))
    assert back.retry_after == 3 and back.details[0]["loc"] == "rate_limit"


def test_headers_belong_to_each_error() -> None:
    first, second = Unauthorized("a"), Unauthorized("b")
    first.headers["X-Extra"] = "1"
    assert "X-Extra" not in second.headers
    assert ConfigError("bad").headers == {}


def test_old_import_places_still_work() -> None:
    assert auth.Unauthorized is Unauthorized and ratelimit.RateLimited is RateLimited
