"""Who may open which model: the service's tokens and what each opens.

A single model's service has one token. A workspace's service has the workspace's token
(``service.token_env`` at the top of the file), which opens every model, the model list and
``/metrics`` whole; a model that names its own ``service.token_env`` is also opened by that
token, and by it alone among the models. Tokens are compared in constant time, every one of
them on every try, so the time of an answer does not tell which token came closer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from hindsight.errors import ConfigError

if TYPE_CHECKING:
    from hindsight.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Scope:
    """What a token (or a session opened with it) opens: every model, or some by name."""

    models: frozenset[str] | None  # None: every model (the workspace's token)

    @property
    def everything(self) -> bool:
        return self.models is None

    def opens(self, model: str) -> bool:
        return self.models is None or model in self.models

    def describe(self) -> str:
        return "every model" if self.models is None else ", ".join(sorted(self.models))


EVERYTHING = Scope(None)


@dataclass(frozen=True)
class Keys:
    """The tokens of one service. With none at all, the service is loopback only and every
    request is let in (see ``hindsight serve``)."""

    workspace: str | None = None
    #: a model's own token -> the models it opens (models may share a variable)
    models: Mapping[str, frozenset[str]] | None = None

    @property
    def required(self) -> bool:
        return self.workspace is not None or bool(self.models)

    def scope_of(self, given: str) -> Scope | None:
        """What ``given`` opens; None when it is no token of this service."""
        given_bytes = given.encode()
        # every comparison runs, whatever matched first: constant time across tokens
        everything = self.workspace is not None and hmac.compare_digest(
            given_bytes, self.workspace.encode())
        opened: set[str] = set()
        for token, models in (self.models or {}).items():
            if hmac.compare_digest(given_bytes, token.encode()):
                opened |= models
        if everything:
            return EVERYTHING
        return Scope(frozenset(opened)) if opened else None

    @classmethod
    def of(cls, workspace: Workspace, read: Callable[[str], str | None],
           only: str | None = None) -> Keys:
        """The tokens of a workspace's service, read from the variables its config names
        (``read``: a variable's name to its value, None when unset); ``only``: of a service
        of that model alone (the other models' tokens open nothing there)."""
        shared = workspace.service.token_env
        own: dict[str, set[str]] = {}
        for name, config in workspace.models.items():
            if only is not None and name != only:
                continue
            variable = config.service.token_env
            if variable != shared:
                token = read(variable)
                if token is not None:
                    own.setdefault(token, set()).add(name)
        everything = read(shared)
        keys = cls(everything, {t: frozenset(m) for t, m in own.items()})
        if everything is None and own:
            opened = set().union(*own.values())
            left = [n for n in workspace.models if n not in opened
                    and (only is None or n == only)]
            if left:
                raise ConfigError(
                    f"{workspace.source}: ${shared} (the workspace's token) is not set while "
                    f"some models have their own: {', '.join(left)} would be opened by no "
                    f"token. Set ${shared} (it opens every model), or give those models "
                    "their own service.token_env and set it")
        return keys


def bearer(authorization: str) -> str | None:
    """The token of an ``Authorization`` header (the scheme is case-insensitive, RFC 7235)."""
    scheme, _, given = authorization.partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


class ModelSeries:
    """A registry's families with only the samples of some models (by their ``model``
    label): what ``/metrics`` shows a token that opens those models alone. Series without a
    ``model`` label (none today) are left out: they could be about any model."""

    def __init__(self, families: Callable[[], Iterable[Metric]], scope: Scope) -> None:
        self._families, self._scope = families, scope

    def collect(self) -> Iterator[Metric]:
        for family in self._families():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples
                            if s.labels.get("model") is not None
                            and self._scope.opens(s.labels["model"])]
            if kept.samples:
                yield kept

