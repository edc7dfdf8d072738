"""Unit tests of yivideo.security: auth, rate limits, paths, URLs, webhooks, media guard.

No Ray here; the HTTP behaviour is checked on a small FastAPI app built in the test.
Network traffic only goes to a throwaway server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

import serve_app
from yivideo.errors import ConfigError, MediaError, RateLimited, Unauthorized, YiVideoError
from yivideo.security import auth, media_guard, urls, webhooks
from yivideo.security.auth import (
    ANONYMOUS,
    API_KEY_PREFIX,
    ApiKeyEntry,
    AuthSettings,
    Principal,
    authenticate,
    hash_api_key,
    issue_jwt,
    new_api_key,
    verify_api_key,
    verify_jwt,
)
from yivideo.security.paths import confine
from yivideo.security.ratelimit import RateLimiter, RateLimitSettings
from yivideo.security.urls import check_public_url, fetch
from yivideo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-" + "0123456789abcdef" * 4


# --------------------------------------------------------------------------- auth


@pytest.fixture
def keys() -> tuple[str, str, AuthSettings]:
    alice_key, alice = new_api_key("alice", "k_alice")
    bob_key, bob = new_api_key("bob", "k_bob")
    settings = AuthSettings(enabled=True, api_keys=[alice, bob], jwt_secret=SECRET)
    return alice_key, bob_key, settings


def test_new_api_key_is_random_prefixed_and_stored_as_hash() -> None:
    plaintext, entry = new_api_key("alice")
    other, _ = new_api_key("alice")
    assert plaintext.startswith(API_KEY_PREFIX) and len(plaintext) >= 40
    assert plaintext != other
    assert entry.owner == "alice" and entry.id.startswith("k_")
    assert entry.sha256 == hashlib.sha256(plaintext.encode()).hexdigest() == hash_api_key(plaintext)
    assert plaintext not in entry.model_dump_json()
    assert plaintext[len(API_KEY_PREFIX) :] not in entry.model_dump_json()


def test_api_key_entry_validation() -> None:
    with pytest.raises(ValueError):
        ApiKeyEntry(id="k", owner="alice", sha256="abc")
    with pytest.raises(ValueError):
        ApiKeyEntry(id="k", owner="bad owner; drop", sha256="0" * 64)
    assert ApiKeyEntry(id="k", owner="a", sha256="AB" * 32).sha256 == "ab" * 32


def test_auth_settings_validation() -> None:
    assert AuthSettings().enabled is False
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuthSettings(jwt_secret="short")
    with pytest.raises(ValueError, match="neither"):
        AuthSettings(enabled=True)
    _, e = new_api_key("a", "dup")
    with pytest.raises(ValueError, match="unique"):
        AuthSettings(api_keys=[e, e])
    assert "test-secret" not in repr(AuthSettings(jwt_secret=SECRET))


def test_verify_api_key_compares_every_entry_in_constant_time(keys, monkeypatch) -> None:
    alice_key, _, settings = keys
    calls: list[tuple[str, str]] = []
    real = auth.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    entry = verify_api_key(alice_key, settings)
    assert entry is not None and entry.id == "k_alice"
    assert len(calls) == 2  # no early exit on the first (matching) entry
    calls.clear()
    assert verify_api_key(alice_key + "x", settings) is None
    assert len(calls) == 2


def test_authenticate_api_key_headers(keys) -> None:
    alice_key, bob_key, settings = keys
    assert authenticate(None, alice_key, settings) == Principal("alice", "api_key", "k_alice")
    assert authenticate(f"Bearer {bob_key}", None, settings) == Principal("bob", "api_key", "k_bob")
    assert authenticate(f"bearer   {bob_key}  ", "", settings).owner == "bob"
    with pytest.raises(Unauthorized, match="invalid API key") as e:
        authenticate(None, "yv_" + "A" * 43, settings)
    assert e.value.http_status == 401 and e.value.code == "unauthorized"
    assert e.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(e.value, YiVideoError)


@pytest.mark.parametrize(
    "authorization, api_key, match",
    [
        (None, None, "missing credentials"),
        ("", "  ", "missing credentials"),
        ("Basic dXNlcjpwYXNz", None, "unsupported Authorization"),
        ("Bearer", None, "unsupported Authorization"),
        ("Token abc", None, "unsupported Authorization"),
        ("Bearer yv_wrong", None, "invalid API key"),
        ("Bearer " + "x" * 9000, None, "too long"),
        (None, "y" * 9000, "too long"),
    ],
)
def test_authenticate_refuses(keys, authorization, api_key, match) -> None:
    with pytest.raises(Unauthorized, match=match):
        authenticate(authorization, api_key, keys[2])


def test_authenticate_refuses_two_credentials(keys) -> None:
    alice_key, bob_key, settings = keys
    with pytest.raises(Unauthorized, match="not both"):
        authenticate(f"Bearer {bob_key}", alice_key, settings)


def test_authenticate_disabled_is_anonymous() -> None:
    assert authenticate(None, None, AuthSettings()) == ANONYMOUS
    assert authenticate("Bearer garbage", "yv_x", AuthSettings()) == ANONYMOUS


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**over) -> dict:
    now = int(time.time())
    base = {"sub": "carol", "iss": "yivideo", "aud": "yivideo", "iat": now, "exp": now + 600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_jwt_valid(keys) -> None:
    settings = keys[2]
    token = issue_jwt("carol", settings)
    assert verify_jwt(token, settings) == Principal("carol", "jwt")
    assert authenticate(f"Bearer {token}", None, settings) == Principal("carol", "jwt")
    hand_made = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert authenticate(f"Bearer {hand_made}", None, settings).owner == "carol"


def test_jwt_leeway_is_small(keys) -> None:
    settings = keys[2]
    now = int(time.time())
    within = jwt.encode(_claims(iat=now - 100, exp=now - 5), SECRET, algorithm="HS256")
    assert verify_jwt(within, settings).owner == "carol"
    beyond = jwt.encode(_claims(iat=now - 100, exp=now - 30), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="expired"):
        verify_jwt(beyond, settings)


def _none_alg(claims: dict) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _tampered(settings: AuthSettings) -> str:
    head, _, sig = issue_jwt("carol", settings).split(".")
    return f"{head}.{_b64(_claims(sub='admin'))}.{sig}"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda s: issue_jwt("carol", s, ttl_s=60, now=time.time() - 3600), "expired"),
        (lambda s: jwt.encode(_claims(aud="other"), SECRET, algorithm="HS256"), "audience"),
        (lambda s: jwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256"), "issuer"),
        (lambda s: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"), "'exp'"),
        (lambda s: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"), "'sub'"),
        (lambda s: jwt.encode(_claims(aud=None), SECRET, algorithm="HS256"), "'aud'"),
        (lambda s: jwt.encode(_claims(iss=None), SECRET, algorithm="HS256"), "'iss'"),
        (lambda s: jwt.encode(_claims(iat=None), SECRET, algorithm="HS256"), "'iat'"),
        (lambda s: jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"), "sub"),
        (
            lambda s: jwt.encode(_claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"),
            "not valid yet",
        ),
        (lambda s: jwt.encode(_claims(), "another-secret" * 4, algorithm="HS256"), "invalid"),
        (lambda s: jwt.encode(_claims(), SECRET, algorithm="HS512"), "invalid"),
        (lambda s: jwt.encode(_claims(), None, algorithm="none"), "invalid"),
        (lambda s: _none_alg(_claims()), "invalid"),
        (_tampered, "invalid"),
        (lambda s: "not.a.jwt", "invalid"),
        (lambda s: "garbage", "invalid"),
    ],
    ids=[
        "expired", "wrong-aud", "wrong-iss", "no-exp", "no-sub", "no-aud", "no-iss", "no-iat",
        "empty-sub", "nbf-future", "wrong-secret", "hs512", "none-alg-pyjwt", "none-alg-manual",
        "tampered-payload", "three-garbage-parts", "garbage",
    ],
)  # fmt: skip
def test_jwt_refused(keys, make, match) -> None:
    settings = keys[2]
    token = make(settings)
    with pytest.raises(Unauthorized, match=match):
        verify_jwt(token, settings)
    with pytest.raises(Unauthorized):
        authenticate(f"Bearer {token}", None, settings)


def test_jwt_without_secret_configured(keys) -> None:
    _, e = new_api_key("dave")
    settings = AuthSettings(enabled=True, api_keys=[e])
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="no jwt_secret"):
        authenticate(f"Bearer {token}", None, settings)


def test_cli_new_key_prints_key_once_and_yaml_entry(capsys) -> None:
    assert auth.main(["new-key", "erin", "--id", "k_erin"]) == 0
    out = capsys.readouterr().out
    key = next(w for w in out.split() if w.startswith(API_KEY_PREFIX))
    assert out.count(key) == 1
    data = yaml.safe_load(out[out.index("auth:") :])
    settings = AuthSettings(enabled=True, **data["auth"])
    assert settings.api_keys[0].id == "k_erin"
    assert authenticate(None, key, settings) == Principal("erin", "api_key", "k_erin")


def test_cli_as_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "yivideo.security.auth", "new-key", "frank"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert API_KEY_PREFIX in done.stdout and "sha256:" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "yivideo.security.auth", "new-key", "no spaces"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "error" in bad.stderr
    assert auth.main(["new-jwt-secret"]) == 0


# --------------------------------------------------------------------------- rate limit


def test_rate_limit_allows_then_refuses_with_retry_after() -> None:
    rl = RateLimiter("3/minute")
    alice = Principal("alice", "api_key", "k1")
    got = [rl.hit(alice) for _ in range(3)]
    assert [d.allowed for d in got] == [True, True, True]
    assert [d.remaining for d in got] == [2, 1, 0]
    refused = rl.hit(alice)
    assert not refused.allowed and refused.remaining == 0
    assert 0 < refused.retry_after <= 60
    assert 1 <= int(refused.retry_after_header) <= 60
    with pytest.raises(RateLimited) as e:
        refused.raise_for_limit()
    assert e.value.http_status == 429 and e.value.code == "rate_limited"
    assert e.value.retry_after >= 1 and e.value.headers["Retry-After"] == str(e.value.retry_after)
    got[0].raise_for_limit()  # allowed: no error


def test_rate_limit_is_per_owner_not_per_header() -> None:
    rl = RateLimiter("2/minute")
    alice_key = Principal("alice", "api_key", "k1")
    alice_jwt = Principal("alice", "jwt")
    bob = Principal("bob", "api_key", "k2")
    assert rl.hit(alice_key).allowed and rl.hit(alice_jwt).allowed
    assert not rl.hit(alice_key).allowed  # the same owner by another credential shares a bucket
    assert rl.hit(bob).allowed
    assert rl.hit("10.9.8.7").allowed  # a plain key (e.g. the socket peer) has its own bucket
    rl.reset(alice_key)
    assert rl.hit(alice_key).allowed


def test_rate_limit_moving_window_recovers() -> None:
    rl = RateLimiter("2/second")
    p = Principal("gina", "jwt")
    assert rl.hit(p).allowed and rl.hit(p).allowed
    refused = rl.hit(p)
    assert not refused.allowed and 0 < refused.retry_after <= 1
    time.sleep(refused.retry_after + 0.05)
    assert rl.hit(p).allowed


def test_rate_limit_several_limits_strictest_wins() -> None:
    rl = RateLimiter("100/hour;2/minute")
    p = Principal("hank", "jwt")
    assert rl.hit(p).allowed and rl.hit(p).allowed
    refused = rl.hit(p)
    assert not refused.allowed and "minute" in refused.limit
    assert refused.retry_after > 0


def test_rate_limit_settings() -> None:
    s = RateLimitSettings(rate="5/second")
    assert RateLimiter.from_settings(s).hit("x").remaining == 4
    with pytest.raises(ValueError, match="not a rate limit"):
        RateLimitSettings(rate="lots")


# --------------------------------------------------------------------------- HTTP wiring


def _app(auth: AuthSettings, rate: str) -> FastAPI:
    """A FastAPI app whose one route depends on the ingress's own caller dependency."""
    app = FastAPI()
    app.state.settings = Settings(auth=auth, rate_limit=RateLimitSettings(rate=rate))
    app.state.limiter = RateLimiter.from_settings(app.state.settings.rate_limit)
    app.add_exception_handler(YiVideoError, serve_app._yivideo_error)

    @app.get("/whoami")
    def whoami(who: serve_app.Caller) -> dict:
        return {"owner": who.owner, "via": who.via}

    return app


def test_http_401_and_429(keys) -> None:
    alice_key, _, settings = keys
    client = TestClient(_app(settings, "3/minute"))
    r = client.get("/whoami")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/whoami", headers={"Authorization": "Bearer nope"}).status_code == 401
    token = issue_jwt("alice", settings)
    r = client.get("/whoami", headers={"X-API-Key": alice_key, "X-Forwarded-For": "1.1.1.1"})
    assert r.json() == {"owner": "alice", "via": "api_key"}
    r = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.json() == {"owner": "alice", "via": "jwt"}
    assert client.get("/whoami", headers={"X-API-Key": alice_key}).status_code == 200
    r = client.get("/whoami", headers={"X-API-Key": alice_key, "X-Forwarded-For": "2.2.2.2"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1


# --------------------------------------------------------------------------- paths


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "inputs"
    other = tmp_path / "inputs2"
    outside = tmp_path / "outside"
    for d in (root / "sub", other, outside):
        d.mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"a")
    (root / "sub" / "b.mp4").write_bytes(b"b")
    (other / "c.mp4").write_bytes(b"c")
    (outside / "secret.txt").write_text("secret")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "linkdir_out").symlink_to(outside)
    (root / "link_in").symlink_to(root / "a.mp4")
    (root / "loop").symlink_to(root / "loop")
    (tmp_path / "root_link").symlink_to(root)
    os.mkfifo(root / "fifo")
    return {"root": root, "other": other, "outside": outside, "tmp": tmp_path}


def test_confine_accepts_paths_inside(tree) -> None:
    root = tree["root"]
    roots = [root, tree["other"]]
    assert confine("a.mp4", roots) == root / "a.mp4"
    assert confine("./sub/b.mp4", roots) == root / "sub" / "b.mp4"
    assert confine("sub//b.mp4", roots) == root / "sub" / "b.mp4"
    assert confine(str(root / "a.mp4"), roots) == root / "a.mp4"
    assert confine("link_in", roots) == root / "a.mp4"
    assert confine("c.mp4", roots) == tree["other"] / "c.mp4"  # found in the second root
    via_link = tree["tmp"] / "root_link"
    assert confine(str(via_link / "a.mp4"), [via_link]) == root / "a.mp4"
    assert confine("new/out.mp4", [root], must_exist=False) == root / "new" / "out.mp4"


def _hostile(tree: dict[str, Path]) -> list[tuple[str, str]]:
    root, outside = tree["root"], tree["outside"]
    return [
        ("../outside/secret.txt", "'..'"),
        ("sub/../../outside/secret.txt", "'..'"),
        ("sub/../a.mp4", "'..'"),
        ("..", "'..'"),
        (str(root / ".." / "outside" / "secret.txt"), "'..'"),
        (str(outside / "secret.txt"), "outside"),
        ("/etc/passwd", "outside"),
        ("/", "outside"),
        ("link_out", "outside"),
        ("linkdir_out/secret.txt", "outside"),
        ("a.mp4\x00.txt", "NUL"),
        ("\x00", "NUL"),
        ("a.mp4\n", "control"),
        ("%2e%2e/outside/secret.txt", "percent"),
        ("%2E%2E%2Foutside%2Fsecret.txt", "percent"),
        ("..%2foutside/secret.txt", "percent"),
        ("a%2emp4", "percent"),
        ("%00", "percent"),
        ("..\\outside\\secret.txt", "backslash"),
        ("~", "'~'"),
        ("~/secret.txt", "'~'"),
        ("~root/.ssh/id_rsa", "'~'"),
        ("", "empty"),
        ("   ", "empty"),
        ("a" * 5000, "longer than 4096"),
        ("sub/" + "b" * 300, "longer than 255"),
        ("x/" * 2100 + "a.mp4", "longer than 4096"),
        (str(root), "not a regular file"),
        ("sub", "not a regular file"),
        ("fifo", "not a regular file"),
        ("loop", "cannot read"),
        ("missing.mp4", "no such file"),
    ]


def test_confine_refuses_hostile_paths(tree) -> None:
    roots = [tree["root"], tree["other"]]
    for path, match in _hostile(tree):
        with pytest.raises(ConfigError, match=match) as e:
            confine(path, roots, loc="video_path")
        assert e.value.details == [{"loc": "video_path", "msg": e.value.details[0]["msg"]}], path
        assert e.value.message.startswith("video_path: "), path


def test_confine_without_roots_and_wrong_types(tree) -> None:
    with pytest.raises(ConfigError, match="no input roots"):
        confine("a.mp4", [])
    with pytest.raises(ConfigError, match="no input roots"):
        confine("a.mp4", [""])
    with pytest.raises(ConfigError, match="empty"):
        confine(None, [tree["root"]])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- URLs


HOSTILE_URLS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.0.0.1:8265/api/jobs/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST./", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "private|reserved"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[2002:7f00:1::1]/", "loopback"),  # 6to4 of 127.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
    ("http://0x7f000001/", "loopback|resolve"),
    ("http://2130706433/", "loopback|resolve"),
    ("http://017700000001/", "loopback|resolve"),
    ("http://127.1/", "loopback|resolve"),
    ("ftp://example.com/video.mp4", "scheme 'ftp'"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("//example.com/x.mp4", r"scheme '\(none\)'"),
    ("example.com/x.mp4", r"scheme '\(none\)'"),
    ("http://user:pass@example.com/", "credentials"),
    ("http://", "no host"),
    ("http://:80/", "no host"),
    ("http://example.com:99999/", "malformed"),
    ("http://exa mple.com/", "control"),
    ("http://example.com/\r\nHost: evil", "control"),
    ("", "empty"),
    ("http://example.com/" + "a" * 9000, "too long"),
]


@pytest.mark.parametrize("url, match", HOSTILE_URLS, ids=[u[:40] for u, _ in HOSTILE_URLS])
def test_check_public_url_refuses(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        check_public_url(url, loc="video_url")
    assert e.value.details[0]["loc"] == "video_url"


@pytest.fixture
def fake_dns(monkeypatch) -> dict[str, list[str]]:
    """Answers for made-up names; anything else goes to the real resolver."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in table:
            if not table[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            fam = {4: socket.AF_INET, 6: socket.AF_INET6}
            return [
                (fam[6 if ":" in ip else 4], socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(urls.socket, "getaddrinfo", fake)
    return table


def test_check_public_url_accepts_public_hosts(fake_dns) -> None:
    fake_dns["media.example"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert check_public_url("https://media.example/v.mp4?x=1") == "https://media.example/v.mp4?x=1"
    assert check_public_url("http://93.184.216.34:8080/v.mp4")
    fake_dns["mixed.example"] = ["93.184.216.34", "10.1.2.3"]  # one bad answer is enough
    with pytest.raises(ConfigError, match="private address 10.1.2.3"):
        check_public_url("https://mixed.example/v.mp4")
    fake_dns["no-such-host.invalid"] = []
    with pytest.raises(ConfigError, match="cannot resolve"):
        check_public_url("http://no-such-host.invalid/")


def test_check_public_url_allowlist(fake_dns) -> None:
    fake_dns["nas.internal"] = ["10.1.2.3"]
    fake_dns["cam.lan.example"] = ["192.168.7.7"]
    assert check_public_url("http://127.0.0.1:8080/x", allowlist=["127.0.0.1"])
    assert check_public_url("http://127.0.0.2/x", allowlist=["127.0.0.0/8"])
    assert check_public_url("http://[::ffff:127.0.0.1]/x", allowlist=["127.0.0.1/32"])
    assert check_public_url("http://[::1]/x", allowlist=["[::1]"])
    assert check_public_url("http://nas.internal/x", allowlist=["NAS.internal."])
    assert check_public_url("http://nas.internal/x", allowlist=["10.0.0.0/8"])
    assert check_public_url("http://cam.lan.example/x", allowlist=[".lan.example"])
    for url, allow in [
        ("http://10.0.0.1/", ["127.0.0.1"]),
        ("http://127.0.0.2/", ["127.0.0.1"]),
        ("http://nas.internal/", ["internal"]),
        ("http://nas.internal/", ["nas.internal.evil"]),
        ("http://169.254.169.254/", ["169.254.0.0/24"]),
        ("ftp://127.0.0.1/", ["127.0.0.1"]),
    ]:
        with pytest.raises(ConfigError):
            check_public_url(url, allowlist=allow)


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        _Handler.seen.append((self.path, self.headers.get("Host")))
        port = self.server.server_address[1]
        routes = {
            "/file": lambda: self._send(200, b"x" * 1000, Content_Length="1000"),
            "/big": lambda: self._send(200, b"x" * 10_000, Content_Length="10000"),
            "/redir-private": lambda: self._send(302, Location=f"http://127.0.0.2:{port}/file"),
            "/redir-v6": lambda: self._send(301, Location=f"http://[::1]:{port}/file"),
            "/redir-any": lambda: self._send(307, Location=f"http://0.0.0.0:{port}/file"),
            "/redir-scheme": lambda: self._send(302, Location="file:///etc/passwd"),
            "/redir-ok": lambda: self._send(302, Location="/file"),
            "/loop": lambda: self._send(302, Location="/loop"),
            "/gzip": lambda: self._send(200, b"x", Content_Encoding="gzip"),
        }
        if self.path in routes:
            routes[self.path]()
        elif self.path == "/big-nolen":
            self._send(200)
            for _ in range(10):
                self.wfile.write(b"y" * 1000)
        elif self.path == "/slow":
            self._send(200)
            for _ in range(40):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(404)


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Handler.seen = []
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


LOCAL = ["127.0.0.1"]


def test_fetch_downloads_within_limits(server, tmp_path) -> None:
    dest = tmp_path / "v.bin"
    assert fetch(f"{server}/file", dest, max_bytes=1000, timeout=10, allowlist=LOCAL) == dest
    assert dest.read_bytes() == b"x" * 1000
    assert not (tmp_path / "v.bin.part").exists()
    dest2 = tmp_path / "v2.bin"
    fetch(f"{server}/redir-ok", dest2, max_bytes=5000, timeout=10, allowlist=LOCAL)
    assert dest2.read_bytes() == b"x" * 1000


def test_fetch_connects_to_checked_ip_with_original_host(server, tmp_path) -> None:
    port = server.rsplit(":", 1)[1]
    fetch(f"http://localhost:{port}/file", tmp_path / "v", 5000, 10, allowlist=["localhost"])
    assert _Handler.seen[-1] == ("/file", f"localhost:{port}")


def test_fetch_refuses_unlisted_loopback_without_connecting(server, tmp_path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        fetch(f"{server}/file", tmp_path / "v", 5000, 10)
    assert _Handler.seen == []


@pytest.mark.parametrize(
    "path, match",
    [
        (
            "/redir-private",
            r"redirect 1 to http://127\.0\.0\.2:\d+/file refused: .*loopback address 127\.0\.0\.2",
        ),
        ("/redir-v6", r"redirect 1 .*loopback address ::1"),
        ("/redir-any", r"redirect 1 .*unspecified"),
        ("/redir-scheme", r"redirect 1 .*scheme 'file'"),
    ],
)
def test_fetch_checks_every_redirect(server, tmp_path, path, match) -> None:
    dest = tmp_path / "v"
    with pytest.raises(ConfigError, match=match) as e:
        fetch(f"{server}{path}", dest, 5000, 10, allowlist=LOCAL, loc="video_url")
    assert e.value.details[0]["loc"] == "video_url"
    assert [p for p, _ in _Handler.seen] == [path]  # the refused hop was never requested
    assert not dest.exists() and not (tmp_path / "v.part").exists()


@pytest.mark.parametrize(
    "path, kwargs, match",
    [
        ("/big", {"max_bytes": 5000}, "10000 bytes, over the limit of 5000"),
        ("/big-nolen", {"max_bytes": 5000}, "over the limit of 5000 bytes"),
        ("/slow", {"timeout": 1.0}, "timed out after 1s"),
        ("/loop", {"max_redirects": 3}, r"too many redirects \(more than 3\)"),
        ("/missing", {}, "HTTP 404"),
        ("/gzip", {}, "'gzip' encoded"),
    ],
)
def test_fetch_limits(server, tmp_path, path, kwargs, match) -> None:
    args = {"max_bytes": 100_000, "timeout": 10.0, "allowlist": LOCAL, **kwargs}
    dest = tmp_path / "v"
    with pytest.raises(ConfigError, match=match):
        fetch(f"{server}{path}", dest, **args)
    assert not dest.exists() and not (tmp_path / "v.part").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_fetch_https_verifies_certificate_for_the_host_name(tmp_path) -> None:
    """The connection goes to the checked IP, while TLS still verifies the host name."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    port = srv.server_address[1]
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        dest = tmp_path / "v"
        fetch(f"https://localhost:{port}/file", dest, 5000, 10, ["localhost"], verify=trust)
        assert dest.read_bytes() == b"x" * 1000
        with pytest.raises(ConfigError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(f"https://127.0.0.1:{port}/file", dest, 5000, 10, LOCAL, verify=trust)
        with pytest.raises(ConfigError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(f"https://localhost:{port}/file", dest, 5000, 10, ["localhost"])
    finally:
        srv.shutdown()
        srv.server_close()


def test_fetch_connection_refused(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="download failed"):
        fetch(f"http://127.0.0.1:{port}/x", tmp_path / "v", 10, 5, allowlist=LOCAL)


# --------------------------------------------------------------------------- webhooks


def test_webhook_known_vector() -> None:
    """The reference vector of the Standard Webhooks libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    headers = webhooks.sign(secret, msg_id, ts, body)
    assert headers == {
        "webhook-id": msg_id,
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert webhooks.verify(secret, headers, body.encode(), now=ts + 10)


def test_webhook_sign_verify_and_tampering() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    msg_id = webhooks.new_message_id()
    body = json.dumps({"workflow_id": "wf_1", "status": "succeeded"}).encode()
    headers = webhooks.sign(secret, msg_id, None, body)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert webhooks.verify(secret, headers, body)
    assert webhooks.verify(secret, {k.upper(): v for k, v in headers.items()}, body)
    assert webhooks.verify(secret, headers, body.decode())
    assert not webhooks.verify(secret, headers, body + b" ")
    assert not webhooks.verify(secret, headers, body.replace(b"succeeded", b"failed"))
    assert not webhooks.verify(webhooks.new_secret(), headers, body)
    assert not webhooks.verify(secret, {**headers, "webhook-id": "msg_other"}, body)
    ts = int(headers["webhook-timestamp"])
    assert not webhooks.verify(secret, {**headers, "webhook-timestamp": str(ts + 1)}, body)
    for missing in headers:
        assert not webhooks.verify(secret, {k: v for k, v in headers.items() if k != missing}, body)
    sig = headers["webhook-signature"]
    assert not webhooks.verify(secret, {**headers, "webhook-signature": "v2," + sig[3:]}, body)
    assert not webhooks.verify(secret, {**headers, "webhook-signature": sig[3:]}, body)
    rotated = {**headers, "webhook-signature": f"v1,AAAA {sig} v1a,xyz"}
    assert webhooks.verify(secret, rotated, body)
    assert webhooks.verify(b"raw-bytes-key", webhooks.sign(b"raw-bytes-key", "m", None, "b"), "b")
    with pytest.raises(ValueError, match="whsec_"):
        webhooks.sign("whsec_***not base64***", "m", 1, b"")


def test_webhook_timestamp_tolerance() -> None:
    secret, body = webhooks.new_secret(), b"{}"
    now = 1_700_000_000
    for ts, ok in [(now, True), (now - 299, True), (now - 301, False), (now + 301, False)]:
        headers = webhooks.sign(secret, "msg_1", ts, body)
        assert webhooks.verify(secret, headers, body, tolerance_s=300, now=now) is ok, ts
    stale = webhooks.sign(secret, "msg_1", int(time.time()) - 3600, body)
    assert not webhooks.verify(secret, stale, body)
    assert webhooks.verify(secret, stale, body, tolerance_s=7200)
    for bad in ("abc", "-5", "1e9", "", "١٧٠٠٠٠٠٠٠٠"):
        headers = {**webhooks.sign(secret, "msg_1", now, body), "webhook-timestamp": bad}
        assert not webhooks.verify(secret, headers, body, now=now)


# --------------------------------------------------------------------------- media guard

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="needs ffmpeg"
)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    video = d / "ok.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
        "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(video),
    )  # fmt: skip
    seg = d / "seg0.ts"
    _ffmpeg("-i", str(video), "-c", "copy", "-f", "mpegts", str(seg))
    m3u8 = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{}\n#EXT-X-ENDLIST\n"
    (d / "local.m3u8").write_text(m3u8.format("seg0.ts"))
    (d / "abs.m3u8").write_text(m3u8.format(seg))
    (d / "remote.m3u8").write_text(m3u8.format("http://127.0.0.1:9/seg0.ts"))
    (d / "playlist.mp4").write_text(m3u8.format("seg0.ts"))
    (d / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile '{video}'\n")
    (d / "list.txt").write_text("ffconcat version 1.0\nfile 'ok.mp4'\n")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video, just some text\n" * 20)
    (d / "dir.mp4").mkdir()
    return {"dir": d, "video": video, "seg": seg}


@needs_ffmpeg
def test_plain_ffprobe_would_follow_the_playlist(media) -> None:
    """The threat: without the guard, ffprobe opens a playlist and the files it names."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", str(media["dir"] / "local.m3u8")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and json.loads(out.stdout)["format"]["format_name"] == "hls"


@needs_ffmpeg
def test_safe_probe_normal_video(media) -> None:
    info = media_guard.safe_probe(media["video"], max_duration_s=5, max_width=1920, max_height=1080)
    assert "mp4" in info["format"]
    assert 0.9 <= info["duration"] <= 1.2
    assert info["video"]["width"] == 320 and info["video"]["height"] == 240
    assert info["video"]["fps"] == 10
    assert info["audio"]["codec"] == "aac"
    assert info["size_bytes"] == media["video"].stat().st_size
    assert media_guard.safe_probe(media["seg"])["format"] == "mpegts"


@needs_ffmpeg
@pytest.mark.parametrize(
    "name, match",
    [
        ("local.m3u8", "HLS playlist"),
        ("abs.m3u8", "HLS playlist"),
        ("remote.m3u8", "HLS playlist"),
        ("playlist.mp4", "HLS playlist"),
        ("list.ffconcat", "concat list"),
        ("list.txt", "concat list"),
        ("empty.mp4", "empty file"),
        ("text.mp4", "not a readable media file"),
        ("dir.mp4", "not a regular file"),
        ("missing.mp4", "file not found"),
    ],
)
def test_safe_probe_refuses(media, name, match) -> None:
    with pytest.raises(MediaError, match=match):
        media_guard.safe_probe(media["dir"] / name)


@needs_ffmpeg
@pytest.mark.parametrize(
    "name", ["local.m3u8", "abs.m3u8", "remote.m3u8", "playlist.mp4", "list.ffconcat", "list.txt"]
)
def test_safe_probe_refuses_references_even_without_sniffing(media, monkeypatch, name) -> None:
    """The ffprobe whitelists alone refuse them (the sniff is only the first layer)."""
    monkeypatch.setattr(media_guard, "_sniff", lambda p: None)
    with pytest.raises(MediaError, match="not a readable media file"):
        media_guard.safe_probe(media["dir"] / name)


@needs_ffmpeg
def test_safe_probe_refuses_formats_outside_the_list(media) -> None:
    with pytest.raises(MediaError, match="format not allowed"):
        media_guard.safe_probe(media["video"], allowed_formats=("matroska",))


@needs_ffmpeg
@pytest.mark.parametrize(
    "limits, match",
    [
        ({"max_duration_s": 0.5}, r"duration 1\.\ds is over the limit of 0.5s"),
        ({"max_width": 100}, "width 320 is over the limit of 100"),
        ({"max_height": 200}, "height 240 is over the limit of 200"),
    ],
)
def test_safe_probe_limits(media, limits, match) -> None:
    with pytest.raises(MediaError, match=match):
        media_guard.safe_probe(media["video"], **limits)


@needs_ffmpeg
def test_safe_probe_timeout(media, monkeypatch) -> None:
    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout", 0))

    monkeypatch.setattr(media_guard.subprocess, "run", slow)
    with pytest.raises(MediaError, match="took longer than 0.5s"):
        media_guard.safe_probe(media["video"], timeout_s=0.5)


# --------------------------------------------------------------------------- callbacks pinned


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Records the POSTs it gets: ``(server address, path, Host header)``."""

    got: list[tuple[str, str, str | None]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.got.append((self.server.server_address[0], self.path, self.headers.get("Host")))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def receivers() -> Iterator[int]:
    """The same port on 127.0.0.1 (the allowed receiver) and 127.0.0.3 (a private service)."""
    allowed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    port = allowed.server_address[1]
    private = http.server.ThreadingHTTPServer(("127.0.0.3", port), _Receiver)
    _Receiver.got = []
    for srv in (allowed, private):
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield port
    finally:
        for srv in (allowed, private):
            srv.shutdown()
            srv.server_close()


def test_callbacks_go_to_the_checked_address_even_when_dns_rebinds(receivers, monkeypatch):
    """The name answers the allowed address once, then a private one (DNS rebinding)."""
    import asyncio

    from yivideo.callbacks import deliver

    answers = ["127.0.0.1"]  # the first lookup; every later one says 127.0.0.3
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if (host.decode() if isinstance(host, bytes) else host) != "hook.rebind.example":
            return real(host, port, *args, **kwargs)
        ip = answers.pop(0) if answers else "127.0.0.3"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings = Settings(callback_allowlist=["127.0.0.1"], callback_attempts=1,
                        webhook_secret=None)
    url = f"http://hook.rebind.example:{receivers}/done"
    record = asyncio.run(deliver(url, {"status": "succeeded", "id": "w"}, settings))
    assert record["status"] == "delivered", record
    assert _Receiver.got == [("127.0.0.1", "/done", f"hook.rebind.example:{receivers}")]


# --------------------------------------------------------------------------- retries


def _ray_task_error(cause: BaseException) -> BaseException:
    import ray

    return ray.exceptions.RayTaskError("run", "Traceback ...", cause)


@pytest.mark.parametrize("exc, reason", [
    (TypeError("x"), "error"),
    (AttributeError("'SimpleNamespace' object has no attribute 'to'"), "error"),
    (ValueError("x"), "error"),
    (RuntimeError("node diagnostics.noop did not return ['value']"), "error"),
    (ConfigError("bad"), "error"),
    (MediaError("bad"), "error"),
])
def test_deterministic_errors_are_not_retried(exc, reason) -> None:
    from yivideo.engine import RETRIED, end_reason

    for raised in (exc, _ray_task_error(exc)):
        assert end_reason(raised) == reason and not RETRIED[reason]


def test_actor_deaths_and_transient_errors_are_retried() -> None:
    import ray

    from yivideo.engine import RETRIED, end_reason
    from yivideo.errors import Cancelled, TransientError

    assert end_reason(ray.exceptions.RayActorError()) == "actor_died"
    assert end_reason(ray.exceptions.WorkerCrashedError()) == "actor_died"
    assert end_reason(_ray_task_error(TransientError("device busy"))) == "transient"
    assert end_reason(_ray_task_error(Cancelled("stop"))) == "cancelled"
    assert RETRIED["actor_died"] and RETRIED["transient"] and not RETRIED["cancelled"]


# --------------------------------------------------------------------------- model loaders

ATTACK_PIPELINE = """\
pipeline:
  name: types.SimpleNamespace
  params: {{}}
preprocessors:
  pwn:
    name: subprocess.Popen
    params:
      args: [touch, {marker}]
"""


def test_a_pipeline_path_is_refused_and_a_pipeline_may_name_only_pyannote(tmp_path) -> None:
    from yivideo.diarization import resolve_pipeline
    from yivideo.errors import ModelNotFound
    from yivideo.settings import ModelSettings

    marker = tmp_path / "pwned"
    upload = tmp_path / "uploads" / "config.yaml"
    upload.parent.mkdir()
    upload.write_text(ATTACK_PIPELINE.format(marker=marker))
    operator = tmp_path / "models"
    (operator / "evil").mkdir(parents=True)
    (operator / "evil" / "config.yaml").write_text(upload.read_text())
    models = ModelSettings(model_dirs=[operator], cache_dir=tmp_path / "cache")
    with pytest.raises(ModelNotFound, match="allow_local_paths"):
        resolve_pipeline(str(upload), models)  # a caller's file: never loaded
    with pytest.raises(ModelNotFound, match="'types.SimpleNamespace'"):
        resolve_pipeline("evil", models)  # even an operator's file names no other class
    local = models.model_copy(update={"allow_local_paths": True})
    with pytest.raises(ModelNotFound, match="only pyannote classes"):
        resolve_pipeline(str(upload), local)
    assert not marker.exists()


class _Pwn:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_must_be_plain_weights(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyannote.audio")
    from yivideo.diarization import _check_weights_only
    from yivideo.errors import ModelNotFound

    marker = tmp_path / "pwned"
    evil = tmp_path / "pytorch_model.bin"
    torch.save({"state_dict": {}, "hook": _Pwn(marker)}, evil)
    with pytest.raises(ModelNotFound, match="not plain weights"):
        _check_weights_only(evil)
    assert not marker.exists()
    plain = tmp_path / "plain.bin"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, plain)
    _check_weights_only(plain)


# --------------------------------------------------------------------------- model names


def _weights_in(path: Path) -> Path | None:
    """A model of the tests below: a folder holding ``weights.bin``."""
    return path if (path / "weights.bin").is_file() else None


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(b"w")
    return path


def test_resolve_chain_walks_folders_packages_and_downloads_in_order(tmp_path) -> None:
    from yivideo.errors import ModelNotFound
    from yivideo.modelkit import Bundled, ModelChain, resolve_chain
    from yivideo.settings import ModelSettings

    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        _model_folder(root / "shared")
    _model_folder(second / "m-aliased")
    installed = {"builtin": True}
    laid_out: list[str] = []

    def lay_out(models: ModelSettings) -> Path:
        laid_out.append("builtin")
        return _model_folder(models.cache_dir / f"builtin-{len(laid_out)}")

    chain = ModelChain(
        kind="test model", read=_weights_in, invalid="holds no weights.bin",
        how_to_add="Put one into models.model_dirs ({dirs}).",
        aliases=lambda name: [name, f"m-{name}"], name_of=lambda p: p.name.removeprefix("m-"),
        bundled={"builtin": Bundled(where="package builtin", get=lay_out,
                                    installed=lambda: installed["builtin"],
                                    missing="needs the package: pip install builtin")},
        download=lambda name: Path("hub") / name)
    models = ModelSettings(model_dirs=[first, second], cache_dir=tmp_path / "cache")

    assert resolve_chain(chain, "shared", models) == first / "shared"  # first folder wins
    assert resolve_chain(chain, "aliased", models) == second / "m-aliased"
    assert resolve_chain(chain, "builtin", models) == tmp_path / "cache" / "builtin-1"
    assert chain.available(models) == {"shared": str(first / "shared"),
                                       "aliased": str(second / "m-aliased"),
                                       "builtin": "package builtin"}
    with pytest.raises(ModelNotFound) as err:
        resolve_chain(chain, "absent", models)
    assert err.value.message == (
        f"test model 'absent' is unknown. Available offline: shared ({first / 'shared'}), "
        f"aliased ({second / 'm-aliased'}), builtin (package builtin). "
        f"Put one into models.model_dirs ({first}, {second}).")
    assert err.value.details[0]["available"] == ["aliased", "builtin", "shared"]
    online = models.model_copy(update={"allow_download": True})
    assert resolve_chain(chain, "absent", online) == Path("hub/absent")
    assert resolve_chain(chain, "shared", online) == first / "shared"  # local before a hub

    installed["builtin"] = False
    with pytest.raises(ModelNotFound, match="'builtin' needs the package: pip install builtin"):
        resolve_chain(chain, "builtin", models)
    assert "builtin" not in chain.available(models)
    installed["builtin"] = True
    broken = ModelChain(kind="test model", read=_weights_in, invalid="", how_to_add="",
                        bundled={"builtin": Bundled("package builtin", lambda: True,
                                                    lambda models: None, "")})
    with pytest.raises(ModelNotFound, match="could not be prepared"):
        resolve_chain(broken, "builtin", models)
    with pytest.raises(ModelNotFound, match="'absent' is unknown"):  # no hub for this kind
        resolve_chain(broken, "absent", online)


@pytest.mark.parametrize("given", ["./evil", "evil/", "../caller/evil", "~/evil", "ABSOLUTE",
                                   "evil\\x", "evil\x00"])
def test_resolve_chain_takes_a_path_only_from_a_local_caller(tmp_path, monkeypatch, given
                                                              ) -> None:
    from yivideo.errors import ModelNotFound
    from yivideo.modelkit import ModelChain, resolve_chain
    from yivideo.settings import ModelSettings

    read_at: list[Path] = []

    def read(path: Path) -> Path | None:
        read_at.append(path)
        return _weights_in(path)

    chain = ModelChain(kind="test model", read=read, invalid="holds no weights.bin",
                       how_to_add="")
    _model_folder(tmp_path / "operator" / "shared")
    evil = _model_folder(tmp_path / "caller" / "evil")  # a caller's upload, model-shaped
    models = ModelSettings(model_dirs=[tmp_path / "operator"], cache_dir=tmp_path / "cache")
    monkeypatch.chdir(tmp_path / "caller")
    monkeypatch.setenv("HOME", str(tmp_path / "caller"))
    with pytest.raises(ModelNotFound, match="is a path; models are named") as err:
        resolve_chain(chain, given.replace("ABSOLUTE", str(evil)), models)
    assert err.value.details[0]["available"] == ["shared"]
    assert read_at and all(p.parent == tmp_path / "operator" for p in read_at)  # the listing


def test_resolve_chain_local_paths_are_absolute_and_checked(tmp_path, monkeypatch) -> None:
    from yivideo.errors import ModelNotFound
    from yivideo.modelkit import ModelChain, resolve_chain
    from yivideo.settings import ModelSettings

    chain = ModelChain(kind="test model", read=_weights_in, invalid="holds no weights.bin",
                       how_to_add="")
    model = _model_folder(tmp_path / "mine" / "model")
    local = ModelSettings(model_dirs=[], cache_dir=tmp_path / "cache", allow_local_paths=True)
    monkeypatch.chdir(tmp_path / "mine")
    assert resolve_chain(chain, "./model", local) == model  # the same from any directory
    with pytest.raises(ModelNotFound, match="'./' holds no weights.bin"):
        resolve_chain(chain, "./", local)
    with pytest.raises(ModelNotFound, match="'./nowhere' is not an existing directory"):
        resolve_chain(chain, "./nowhere", local)
    named_only = ModelChain(kind="test model", read=_weights_in, invalid="", how_to_add="",
                            local_paths=False)  # a loader that takes a name only
    with pytest.raises(ModelNotFound, match="'./model' is a path; .* never given by path"):
        resolve_chain(named_only, "./model", local)


def test_chat_model_names_are_listed_again_only_when_they_may_have_changed(tmp_path) -> None:
    import asyncio

    from yivideo.openai_api import KnownModels
    from yivideo.settings import ModelSettings

    root = tmp_path / "llms"
    _model_folder(root / "one")
    models = ModelSettings(model_dirs=[root], cache_dir=tmp_path / "cache")
    listings: list[int] = []

    def available(models: ModelSettings) -> dict[str, str]:
        listings.append(1)
        return {p.name: str(p) for p in sorted(root.iterdir()) if _weights_in(p)}

    def touch_root() -> None:  # an mtime surely newer than the last (timestamps are coarse)
        stamp = root.stat().st_mtime_ns + 1_000_000_000
        os.utime(root, ns=(stamp, stamp))

    known = KnownModels(available)

    async def ask(name: str) -> frozenset[str]:
        return await known.names(models, name)

    assert asyncio.run(ask("one")) == {"one"} and len(listings) == 1
    assert asyncio.run(ask("one")) == {"one"} and len(listings) == 1  # remembered
    assert asyncio.run(ask("absent")) == {"one"} and len(listings) == 2  # a miss: again
    (root / "two").mkdir()  # the folder's mtime is unchanged by a file inside a sub-folder
    stamp = root.stat().st_mtime_ns
    (root / "two" / "weights.bin").write_bytes(b"w")
    assert root.stat().st_mtime_ns == stamp
    assert asyncio.run(ask("two")) == {"one", "two"} and len(listings) == 3
    shutil.rmtree(root / "one")
    touch_root()
    assert asyncio.run(ask("two")) == {"two"} and len(listings) == 4  # the folder changed
