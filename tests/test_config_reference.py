"""The configuration reference is generated from the config model: every key has an entry."""

from __future__ import annotations

import importlib.util
import types
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hindsight.config import Config
from hindsight.config_reference import render_reference


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every key a config file may hold, walked independently of the generator."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, field
        for inner in _models_in(field.annotation):
            origin = typing.get_origin(field.annotation)
            many = origin is tuple or (origin in (typing.Union, types.UnionType) and any(
                typing.get_origin(a) is tuple for a in typing.get_args(field.annotation)))
            yield from _keys(inner, f"{key}[]." if many else f"{key}.")


def _entries(markdown: str) -> dict[str, list[str]]:
    """Table rows of the reference, by key: ``| `key` | type | default | meaning | checks |``."""
    rows: dict[str, list[str]] = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_config_key_has_a_description_in_the_model() -> None:
    missing = [key for key, field in _keys(Config) if not (field.description or "").strip()]
    assert missing == []


def test_every_config_key_has_an_entry_with_its_meaning_in_the_generated_reference() -> None:
    entries = _entries(render_reference())
    keys = [key for key, _ in _keys(Config)]
    assert [key for key in keys if key not in entries] == []
    assert [key for key in keys if not entries[key][2]] == []
    assert set(entries) == set(keys)


def test_an_entry_gives_the_type_default_and_bounds_of_its_key() -> None:
    entries = _entries(render_reference())
    kind, default, meaning, checks = entries["alerts.min_effect"]
    assert (kind, default) == ("number", "`0.05`")
    assert "smallest drop" in meaning
    assert "≥ 0" in checks and "≤ 1" in checks
    assert entries["columns.id"][1] == "required"
    assert entries["alerts.correction"][0] == "`holm` or `bh`"
    assert entries["drift.window"][1] == "`1h`"
    assert entries["segments"][0] == "list of column names"
    assert "pattern" in entries["pipeline.cpu"][3]


def _words(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def test_every_rule_across_keys_is_stated_in_the_reference() -> None:
    text = _words(render_reference())
    for model in [Config, *(m for _, f in _keys(Config) for m in _models_in(f.annotation))]:
        for decorator in model.__pydantic_decorators__.model_validators.values():
            doc = (decorator.func.__doc__ or "").strip()
            assert doc, f"{model.__name__}.{decorator.cls_var_name} has no docstring"
            first_line = _words(doc.splitlines()[0]).removeprefix("- ")
            assert first_line in text


def _hook() -> types.ModuleType:
    """The documentation site's build hook (docs/hooks/reference.py), loaded as mkdocs does."""
    path = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "reference.py"
    spec = importlib.util.spec_from_file_location("docs_reference_hook", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_of_the_site_carries_every_key() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"
    built = _hook().on_page_markdown(page.read_text(encoding="utf-8"))
    entries = _entries(built)
    assert [key for key, _ in _keys(Config) if key not in entries] == []


def test_the_command_line_page_of_the_site_carries_every_command() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md"
    built = _hook().on_page_markdown(page.read_text(encoding="utf-8"))
    for command in ("hindsight log predictions", "hindsight backfill", "hindsight serve",
                    "hindsight storage tier", "hindsight pipeline kubeflow"):
        assert f"### `{command}`" in built
        assert f"Usage: {command} " in built
