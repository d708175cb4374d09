"""A workspace: many models in one file, sharing a store, sinks, a service and defaults.

A config file with a ``models:`` key is a workspace::

    store: ./hindsight-data        # each model's tables live under <store>/models/<name>
    sinks: [...]                   # every key a model takes may be given here: the default
    min_samples: 200               #   for every model (mappings merge key by key)
    models:
      fraud:                       # inline
        columns: {...}
      router: {include: models/router.yaml}   # relative to this file

A file without ``models:`` is one model's config, read exactly as before (its store is used as
it is). One model's broken config does not stop the others from loading: it is kept, with its
message, in ``Workspace.broken``; a command that needs that model raises it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hindsight.config import (
    CONFIG_ENV_VAR,
    Config,
    ServiceSettings,
    cold_store_problem,
    parse_config,
    resolve_config_path,
)
from hindsight.errors import ConfigError

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MODELS_FOLDER = "models"
#: keys a model inside a workspace may not set: they are the workspace's
WORKSPACE_ONLY = ("store",)
#: the one service key a model may set: its own token, beside the workspace's
MODEL_SERVICE_KEYS = ("token_env",)


@dataclass(frozen=True)
class Workspace:
    """The models of one config file, by name, in the file's order."""

    source: str
    store: str
    models: dict[str, Config]
    #: models whose config could not be read, with the reason (the others still work)
    broken: dict[str, ConfigError] = field(default_factory=dict)
    #: the workspace's own service settings (its token, limits); each model's config holds
    #: the same, with the model's own ``token_env`` where it gives one
    service: ServiceSettings = field(default_factory=ServiceSettings)
    #: False when the file is a single model's config (no ``models:`` key)
    is_workspace: bool = True
    order: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every model's name, broken ones included, in the file's order."""
        return [*self.order] if self.order else [*self.models, *self.broken]

    def config(self, model: str | None = None) -> Config:
        """The config of ``model``; without a name, the only model there is."""
        if model is None:
            if len(self.names) != 1:
                raise ConfigError(
                    f"{self.source} holds {len(self.names)} models ({', '.join(self.names)}): "
                    "name one with --model NAME")
            model = self.names[0]
        if model in self.broken:
            raise self.broken[model]
        if model not in self.models:
            raise ConfigError(f"{self.source} has no model {model!r}; its models: "
                              f"{', '.join(self.names) or 'none'}")
        return self.models[model]

    def __iter__(self) -> Iterator[Config]:
        return iter(self.models.values())


def load_workspace(path: str | Path | None = None) -> Workspace:
    """Read a workspace (or a single model's config) file; relative paths are taken relative
    to the file."""
    file = resolve_config_path(path)
    raw = _read_mapping(file, what="a mapping of keys (model, store, columns, ... or models)")
    if "models" not in raw:
        config = _resolved(parse_config(raw, source=str(file)), file.parent)
        return Workspace(str(file), config.store, {config.model: config},
                         service=config.service, is_workspace=False)
    return _workspace(file, raw)


def _workspace(file: Path, raw: dict[str, Any]) -> Workspace:
    shared = {k: v for k, v in raw.items() if k != "models"}
    models = raw["models"]
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{file}: models must map each model's name to its config "
                          "(inline, or {include: path.yaml})")
    if "store" not in shared:
        raise ConfigError(f"{file}: store is missing (where the workspace keeps every "
                          "model's tables: a path or URL)")
    if "model" in shared:
        raise ConfigError(f"{file}: model is given at the top of a workspace: each model is "
                          "named by its key under models; remove it")
    service = parse_config({"model": "-", "store": "-", "columns": _ANY_COLUMNS,
                            "service": shared.get("service", {})}, source=str(file)).service
    store = _absolute(str(shared["store"]), file.parent)
    cold = shared.get("storage", {}).get("cold_store") if isinstance(
        shared.get("storage"), dict) else None
    found: dict[str, Config] = {}
    broken: dict[str, ConfigError] = {}
    for name, given in models.items():
        name = str(name)
        try:
            found[name] = _model(file, name, given, shared, store, cold)
        except ConfigError as exc:
            broken[name] = exc
    return Workspace(str(file), store, found, broken, service,
                     order=tuple(str(name) for name in models))


_ANY_COLUMNS = {"id": "i", "timestamp": "t", "prediction": "p", "label": "y"}


def _model(file: Path, name: str, given: object, shared: dict[str, Any], store: str,
           cold: object) -> Config:
    where = f"{file} (models.{name})"
    if not MODEL_NAME.match(name):
        raise ConfigError(f"{where}: the model's name {name!r} becomes a folder, a URL path and "
                          "a metric label: use letters, digits, '_' and '-' (64 at most), "
                          "starting with a letter or digit")
    if isinstance(given, dict) and set(given) == {"include"}:
        included = (file.parent / str(given["include"])).resolve()
        where = f"{included} (included as models.{name})"
        given = _read_mapping(included, what="one model's config (columns, segments, ...)")
    if not isinstance(given, dict):
        raise ConfigError(f"{where}: expected the model's config as a mapping, or "
                          "{include: path.yaml}")
    for key in WORKSPACE_ONLY:
        if key in given:
            raise ConfigError(f"{where}: {key} is the workspace's ({file}): each model's tables "
                              f"live under its store, in {MODELS_FOLDER}/{name}; remove {key} "
                              "here")
    own_service = given.get("service", {})
    if not isinstance(own_service, dict) or set(own_service) - set(MODEL_SERVICE_KEYS):
        raise ConfigError(f"{where}: service is the workspace's; a model may only give its own "
                          f"token, as service: {{token_env: VARIABLE}}")
    if given.get("model", name) != name:
        raise ConfigError(f"{where}: model is {given['model']!r} but its key under models is "
                          f"{name!r}: remove model here (the key names it)")
    merged = _merge(shared, given)
    merged["model"] = name
    merged["store"] = _join(store, MODELS_FOLDER, name)
    if isinstance(cold, str):
        merged.setdefault("storage", {})
        merged["storage"] = {**merged["storage"],
                             "cold_store": _join(_absolute(cold, file.parent), MODELS_FOLDER,
                                                 name)}
    config = parse_config(merged, source=where)
    problem = (cold_store_problem(config.store, config.storage.cold_store)
               if config.storage.cold_store else None)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    return config


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; mappings merge key by key, anything else is replaced.

    >>> _merge({"alerts": {"alpha": 0.01, "min_effect": 0.05}, "segments": ["a"]},
    ...        {"alerts": {"alpha": 0.05}, "segments": ["b"]})
    {'alerts': {'alpha': 0.05, 'min_effect': 0.05}, 'segments': ['b']}
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_mapping(file: Path, what: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{file}: no such config file (pass --config FILE or set {CONFIG_ENV_VAR})"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected {what}")
    return raw


def _absolute(location: str, folder: Path) -> str:
    """A relative local path, taken relative to the config file's folder."""
    if "://" in location or Path(location).is_absolute():
        return location
    return str((folder / location).resolve())


def _join(location: str, *parts: str) -> str:
    if "://" in location:
        return "/".join([location.rstrip("/"), *parts])
    return str(Path(location, *parts))


def _resolved(config: Config, folder: Path) -> Config:
    """A single model's config with its relative store and cold store made absolute."""
    store = _absolute(config.store, folder)
    update: dict[str, Any] = {"store": store}
    cold = config.storage.cold_store
    if cold is not None:
        cold = _absolute(cold, folder)
        problem = cold_store_problem(store, cold)
        if problem is not None:  # the paths as resolved against the file's folder
            raise ConfigError(f"{config.source}: {problem}")
        update["storage"] = config.storage.model_copy(update={"cold_store": cold})
    resolved = config.model_copy(update=update)
    resolved._source = config.source
    return resolved
