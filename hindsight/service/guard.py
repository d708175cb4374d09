"""Which requests each route lets in, as FastAPI dependencies (the tokens and what each
opens are ``access``'s; sessions are ``signin``'s)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from hindsight.service.access import EVERYTHING, Keys, Scope, bearer
from hindsight.service.signin import COOKIE, Sessions, SignInRequired, page_target, wants_html


class Guard:
    """The service's rules, as FastAPI dependencies: ingest needs a bearer token that opens
    the model; the API and ``/metrics`` too, unless ``service.open_reads``; a page also
    opens with a session (a browser without one is sent to sign in)."""

    def __init__(self, keys: Keys, sessions: Sessions | None, open_reads: bool) -> None:
        self.keys, self.sessions, self.open_reads = keys, sessions, open_reads

    def bearer_scope(self, request: Request) -> Scope:
        """What the request's bearer token opens; 401 without one that is the service's."""
        if not self.keys.required:
            return EVERYTHING  # no token: the server is bound to loopback
        given = bearer(request.headers.get("authorization", ""))
        scope = None if given is None else self.keys.scope_of(given)
        if scope is None:
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return scope

    def session_scope(self, request: Request) -> Scope | None:
        if self.sessions is None:
            return None
        return self.sessions.scope(request.cookies.get(COOKIE))

    def page_scope(self, request: Request) -> Scope:
        """What a page request may see: a session's scope, else the bearer token's; a
        browser with neither is sent to sign in."""
        if self.open_reads or not self.keys.required:
            return EVERYTHING
        scope = self.session_scope(request)
        if scope is not None:
            return scope
        if "authorization" not in request.headers and wants_html(request):
            raise SignInRequired(page_target(request))
        return self.bearer_scope(request)

    def machine_scope(self, request: Request) -> Scope:
        return EVERYTHING if self.open_reads else self.bearer_scope(request)

    def writes(self, model: str) -> Callable[[Request], None]:
        def dependency(request: Request) -> None:
            _opens(self.bearer_scope(request), model)
        return dependency

    def machine_reads(self, model: str) -> Callable[[Request], None]:
        """The API and /metrics: the bearer token only (a browser's cookie opens none)."""
        def dependency(request: Request) -> None:
            _opens(self.machine_scope(request), model)
        return dependency

    def reads(self, model: str) -> Callable[[Request], None]:
        """A page: the bearer token or a session; a browser without either signs in."""
        def dependency(request: Request) -> None:
            _opens(self.page_scope(request), model)
        return dependency


def _opens(scope: Scope, model: str) -> None:
    if not scope.opens(model):
        raise HTTPException(403, f"this token opens {scope.describe()}, not model {model!r}: "
                                 "use that model's own token or the workspace's")
