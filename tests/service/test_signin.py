"""A way in from a browser when the service has a token: a sign-in page sets a session
cookie for the pages; the API and /metrics keep requiring the bearer token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.service.signin import COOKIE, WRONG_TRIES, WRONG_WINDOW_SECONDS, Sessions
from tests.service.test_app import TOKEN, Server
from tests.service.test_pages import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def sign_in(browser: Browser, server: Server, token: str, path: str = "/segments") -> Any:
    """A fresh browser context that opens ``path`` and answers the sign-in form."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + path)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return context, page


def test_signing_in_with_the_token_reaches_the_pages_with_an_http_only_cookie(
    browser: Browser, server: Server,
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/segments?column=country")
    assert page.url.startswith(server.url + "/signin")  # redirected, not a JSON 401
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/segments?column=country")
    assert page.locator("nav").count() == 1
    page.goto(server.url + "/")
    assert page.url == server.url + "/" and page.locator("nav").count() == 1
    [cookie] = context.cookies()
    assert cookie["name"] == COOKIE and cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax" and cookie["secure"] is False  # plain http here
    assert cookie["expires"] > 0 and TOKEN not in cookie["value"]
    context.close()


def test_a_wrong_token_does_not_sign_in(browser: Browser, server: Server) -> None:
    context, page = sign_in(browser, server, "not-the-token")
    assert page.url.startswith(server.url + "/signin")
    assert "wrong token" in page.inner_text("main").lower()
    assert context.cookies() == []
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/signin")
    context.close()


def test_machine_routes_still_require_the_bearer_token_with_a_session_cookie(
    browser: Browser, server: Server,
) -> None:
    context, page = sign_in(browser, server, TOKEN, "/")
    assert page.url == server.url + "/"
    # the browser's own requests carry the session cookie: the API and /metrics refuse them
    for path in ("/metrics", "/v1/alerts", "/openapi.json"):
        assert context.request.get(server.url + path).status == 401, path
    status = page.evaluate("""async () => (await fetch('/v1/predictions', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: '[]'})).status""")
    assert status == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert context.request.get(server.url + "/metrics", headers=bearer).status == 200
    context.close()


def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(
    browser: Browser, server: Server,
) -> None:
    context, page = sign_in(browser, server, TOKEN, "/")
    [cookie] = context.cookies()
    page.click("nav button:has-text('Sign out')")
    page.wait_for_url(server.url + "/signin*")
    assert context.cookies() == []
    page.goto(server.url + "/drift")
    assert page.url.startswith(server.url + "/signin")
    # a copy of the cookie taken before signing out opens nothing either
    with httpx.Client(base_url=server.url, cookies={COOKIE: cookie["value"]}) as http:
        assert http.get("/", headers={"Accept": "text/html"}).status_code == 303
    context.close()


def test_an_api_client_without_a_token_still_gets_a_json_401_and_a_bearer_opens_pages(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url) as http:
        refused = http.get("/", headers={"Accept": "application/json"})
        assert refused.status_code == 401 and "bearer" in refused.json()["detail"]
        assert http.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        browser_like = http.get("/drift?feature=a", headers={"Accept": "text/html"})
        assert browser_like.status_code == 303
        assert browser_like.headers["location"] == "/signin?next=/drift%3Ffeature%3Da"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                    "/\\evil.example", "javascript:alert(1)"])
def test_signing_in_never_redirects_to_another_site(server: Server, target: str) -> None:
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/signin", data={"token": TOKEN, "next": target})
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_a_sign_in_posted_from_another_site_is_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/signin", data={"token": TOKEN, "next": "/"},
                           headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and COOKIE not in answer.cookies


def test_the_cookie_is_secure_behind_https_and_when_configured(
    server: Server, make_config: Callable[..., Config],
) -> None:
    with httpx.Client(base_url=server.url) as http:  # a proxy on this host ending TLS
        answer = http.post("/signin", data={"token": TOKEN},
                           headers={"X-Forwarded-Proto": "https"})
    assert "secure" in answer.headers["set-cookie"].lower()
    with Monitor(make_config(service={"secure_cookie": True})) as monitor:
        configured = Server(monitor, TOKEN)
        try:
            with httpx.Client(base_url=configured.url) as http:
                answer = http.post("/signin", data={"token": TOKEN})
        finally:
            configured.stop()
    cookie = answer.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_a_session_expires_after_its_lifetime() -> None:
    now = [1000.0]
    sessions = Sessions("t", lifetime_seconds=3600, clock=lambda: now[0])
    cookie = sessions.open()
    assert sessions.valid(cookie)
    now[0] += 3601
    assert not sessions.valid(cookie)
    assert not sessions.valid(cookie[:-2] + "xx") and not sessions.valid("")


def test_a_client_sending_wrong_tokens_must_wait_before_trying_again() -> None:
    now = [1000.0]
    sessions = Sessions("t", lifetime_seconds=3600, clock=lambda: now[0])
    for _ in range(WRONG_TRIES - 1):
        sessions.wrong("10.0.0.1")
        now[0] += 1
    assert sessions.wait_seconds("10.0.0.1") == 0
    sessions.wrong("10.0.0.1")
    assert sessions.wait_seconds("10.0.0.1") == pytest.approx(WRONG_WINDOW_SECONDS
                                                              - (WRONG_TRIES - 1))
    assert sessions.wait_seconds("10.0.0.2") == 0  # another client is not held up
    now[0] += WRONG_WINDOW_SECONDS
    assert sessions.wait_seconds("10.0.0.1") == 0


def test_the_eleventh_wrong_token_in_a_minute_is_answered_429(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        answers = [http.post("/signin", data={"token": "guess"}).status_code
                   for _ in range(WRONG_TRIES)]
        held = http.post("/signin", data={"token": TOKEN})
    assert answers == [401] * WRONG_TRIES
    assert held.status_code == 429 and int(held.headers["retry-after"]) > 0
    assert COOKIE not in held.cookies


def test_without_a_token_the_sign_in_page_leads_to_the_pages(monitor: Monitor) -> None:
    server = Server(monitor, None)
    try:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/signin").headers["location"] == "/"
    finally:
        server.stop()


def test_serve_prints_the_address_it_listens_on_and_whether_a_token_is_required(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text("model: m\nstore: ./s\n"
                      "columns: {id: i, timestamp: t, prediction: p, label: y}\n")
    env = {**os.environ, "HINDSIGHT_TOKEN": TOKEN, "PYTHONPATH": os.getcwd()}
    with subprocess.Popen([sys.executable, "-m", "hindsight.cli", "--config", str(config),
                           "serve", "--port", "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) as serving:
        try:
            assert serving.stdout is not None
            line = serving.stdout.readline()
            address = line.split()[2]
            assert line.startswith("Listening on http://127.0.0.1:")
            assert "bearer token required" in line and "/signin" in line
            assert httpx.get(address + "/healthz").json() == {"status": "ok"}
        finally:
            serving.terminate()
            serving.communicate(timeout=60)
