"""A way in from a browser when the service has a token.

Machines send the bearer token on every request; a person enters it once on ``/signin``,
which sets a session cookie: opaque (a random id, signed with itsdangerous), HttpOnly,
SameSite=Lax, Secure over https (or when ``service.secure_cookie`` says so), expiring after
``service.session_hours``. The cookie opens the pages only: the API and ``/metrics`` keep
requiring the bearer token, so a page on another site can never use a person's session to
read or write them. A session opens what the token it was opened with opens (in a workspace,
a model's own token opens that model's pages alone). Sessions live in the server's memory:
signing out ends one at once, and a restart ends them all.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, TimestampSigner

from hindsight.service.access import EVERYTHING, Keys, Scope

COOKIE = "hindsight_session"
MAX_FORM_BYTES = 8 * 1024
WRONG_TRIES = 10  # wrong tokens a client may send within WRONG_WINDOW_SECONDS ...
WRONG_WINDOW_SECONDS = 60.0  # ... before its sign-ins are refused (429) for the rest of it


class Sessions:
    """The live sessions of one server; ``open`` gives the cookie value of a new one.
    ``keys``: the service's token, or its tokens and what each opens."""

    def __init__(self, keys: str | Keys, lifetime_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = Keys(keys) if isinstance(keys, str) else keys
        self._lifetime, self._clock = lifetime_seconds, clock
        self._signer = TimestampSigner(secrets.token_bytes(32), salt="hindsight.session")
        self._expiry: dict[str, tuple[float, Scope]] = {}
        self._wrong: dict[str, list[float]] = {}  # client -> times of its recent wrong tokens
        self._lock = threading.Lock()

    @property
    def lifetime_seconds(self) -> int:
        return int(self._lifetime)

    def token_matches(self, given: str) -> bool:
        """Compared in constant time."""
        return self._keys.scope_of(given) is not None

    def scope_of_token(self, given: str) -> Scope | None:
        """What a session opened with ``given`` opens; None: no token of this service."""
        return self._keys.scope_of(given)

    def wait_seconds(self, client: str) -> float:
        """How long ``client`` must wait before its next sign-in: 0 unless it sent
        ``WRONG_TRIES`` wrong tokens within the last ``WRONG_WINDOW_SECONDS``."""
        now = self._clock()
        with self._lock:
            recent = [t for t in self._wrong.get(client, []) if t > now - WRONG_WINDOW_SECONDS]
            if len(recent) < WRONG_TRIES:
                return 0.0
            return recent[0] + WRONG_WINDOW_SECONDS - now

    def wrong(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._wrong) > 10_000:  # bounded: forget clients with no recent try
                self._wrong = {c: ts for c, ts in self._wrong.items()
                               if ts[-1] > now - WRONG_WINDOW_SECONDS}
            tries = self._wrong.setdefault(client, [])
            tries[:] = [t for t in tries if t > now - WRONG_WINDOW_SECONDS][-WRONG_TRIES:]
            tries.append(now)

    def open(self, scope: Scope = EVERYTHING) -> str:
        session = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._expiry = {s: (t, o) for s, (t, o) in self._expiry.items() if t > now}
            self._expiry[session] = (now + self._lifetime, scope)
        return self._signer.sign(session).decode()

    def valid(self, cookie: str | None) -> bool:
        return self.scope(cookie) is not None

    def scope(self, cookie: str | None) -> Scope | None:
        """What the session of ``cookie`` opens; None: no live session."""
        session = self._session(cookie)
        with self._lock:
            found = self._expiry.get(session or "")
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def close(self, cookie: str | None) -> None:
        session = self._session(cookie)
        with self._lock:
            self._expiry.pop(session or "", None)

    def _session(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie, max_age=self.lifetime_seconds).decode()
        except BadSignature:  # forged, altered or expired
            return None


class SignInRequired(Exception):
    """A browser asked for a page without a session: it is sent to the sign-in page."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def page_target(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(target: str) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or parts.scheme or parts.netloc):
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    """A form posted from a page of this server (or by a client that sends no Origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def add_signin(app: FastAPI, sessions: Sessions | None, templates: Jinja2Templates,
               model: str, secure_cookie: bool) -> None:
    """The sign-in page, the form it posts, sign-out, and the redirect of browsers that ask
    for a page without a session. Without a token (``sessions`` None) there is nothing to
    sign in to: ``/signin`` leads to the pages."""

    @app.exception_handler(SignInRequired)
    async def to_signin(_: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/signin?next={quote(exc.target, safe='/')}", 303)

    def form(request: Request, target: str, wrong: bool = False) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "signin.html", {"model": model, "next": target, "wrong": wrong},
            status_code=401 if wrong else 200, headers={"Cache-Control": "no-store"})

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    def signin_page(request: Request, next: str = "/") -> Response:
        if sessions is None:
            return RedirectResponse("/", 303)
        return form(request, safe_next(next))

    @app.post("/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        if sessions is None:
            return RedirectResponse("/", 303)
        if not _same_origin(request):
            return Response("a sign-in posted from another site", 403)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return Response("sign-in form over 8 KB", 413)
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        target = safe_next((fields.get("next") or ["/"])[0])
        client = request.client.host if request.client else ""
        wait = sessions.wait_seconds(client)
        if wait > 0:
            return Response(f"{WRONG_TRIES} wrong tokens within {WRONG_WINDOW_SECONDS:.0f} s: "
                            f"try again in {wait:.0f} s", 429,
                            headers={"Retry-After": str(max(1, round(wait)))})
        scope = sessions.scope_of_token((fields.get("token") or [""])[0].strip())
        if scope is None:
            sessions.wrong(client)
            return form(request, target, wrong=True)
        answer = RedirectResponse(target, 303)
        answer.set_cookie(COOKIE, sessions.open(scope), max_age=sessions.lifetime_seconds,
                          path="/", httponly=True, samesite="lax",
                          secure=secure_cookie or request.url.scheme == "https")
        return answer

    @app.post("/signout", include_in_schema=False)
    def signout(request: Request) -> Response:
        if not _same_origin(request):
            return Response("a sign-out posted from another site", 403)
        if sessions is not None:
            sessions.close(request.cookies.get(COOKIE))
        answer = RedirectResponse("/signin", 303)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return answer
