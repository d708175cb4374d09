"""The configuration reference, written from the config model itself.

The documentation site renders it at build time (``docs/hooks/reference.py``), so the reference
cannot disagree with the code: every key of ``Config``, its type, default, meaning (the field's
description) and the checks that apply (its bounds, its pattern, its validators' docstrings, and
the rules across keys from the models' validators).
"""

from __future__ import annotations

import inspect
import types
import typing
from datetime import timedelta
from typing import Any, Literal

import annotated_types as at
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator, WrapValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hindsight.config import ColumnName, Config, duration_text

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean",
            timedelta: "duration (`30s`, `5m`, `1h`, `1d`)"}
_VALIDATORS = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)
_BOUNDS = [(at.Ge, "ge", "≥"), (at.Gt, "gt", ">"), (at.Le, "le", "≤"), (at.Lt, "lt", "<")]


def render_reference(model: type[BaseModel] = Config) -> str:
    """Markdown: one section per mapping, one table row per key.

    >>> "| `model` | string | required |" in render_reference()
    True
    """
    return "\n".join(_sections(model, "", None))


def _sections(model: type[BaseModel], prefix: str, title: str | None) -> list[str]:
    lines: list[str] = []
    if title is not None:
        lines += [f"## `{title}` {{ #{_anchor(title)} }}", ""]
    lines += _paragraph(model.__doc__)
    lines += ["| key | type | default | meaning | checks |", "|---|---|---|---|---|"]
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner, many = _nested_model(field.annotation)
        if inner is not None:
            nested.append((inner, f"{key}[]" if many else key))
        kind = _type_of(field.annotation)
        if inner is not None:
            target = f"{key}[]" if many else key
            link = f"[`{target}`](#{_anchor(target)})"
            kind = kind.replace("list of mapping (below)", f"list of mappings: {link}").replace(
                "mapping (below)", f"mapping: {link}")
        cells = [f"`{key}`", kind, _default_of(field, inner),
                 _cell(field.description or ""), _cell("; ".join(_checks(field)))]
        lines.append("| " + " | ".join(cells) + " |")
    rules = [_cell(rule) for doc in _rule_docs(model) for rule in _items(doc)]
    if rules:
        lines += ["", "Checked across keys:", ""] + [f"- {rule}" for rule in rules]
    lines.append("")
    for inner, key in nested:
        lines += _sections(inner, f"{key}.", key)
    return lines


def _anchor(key: str) -> str:
    return key.replace(".", "-").replace("[]", "")


def _paragraph(doc: str | None) -> list[str]:
    text = " ".join((doc or "").split())
    return [text, ""] if text else []


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The mapping type a key holds (or a list of), and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in typing.get_args(annotation):
        inner, many = _nested_model(arg)
        if inner is not None:
            return inner, many or typing.get_origin(annotation) is tuple
    return None, False


def _type_of(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation == ColumnName:
        return "column name"
    if origin is typing.Annotated:
        return _type_of(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [_type_of(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or `null`" if type(None) in args else "")
    if origin is tuple:
        inner = _type_of(args[0])
        return f"list of {'column names' if inner == 'column name' else inner}"
    if origin is dict:
        return f"mapping of {_type_of(args[0])} to {_type_of(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_of(field: FieldInfo, inner: type[BaseModel] | None) -> str:
    if field.is_required():
        return "required"
    if field.default is PydanticUndefined and field.default_factory is not None:
        value: object = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if inner is not None and isinstance(value, BaseModel):
        return "(below)"
    return f"`{_yaml_value(value)}`"


def _yaml_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _checks(field: FieldInfo) -> list[str]:
    found = _constraints([*field.metadata, *_annotated_metadata(field.annotation)])
    inner = _element_metadata(field.annotation)
    return found + ([f"each {check}" for check in _constraints(inner)] if inner else [])


def _element_metadata(annotation: Any) -> list[object]:
    """Constraints on the items of a list or the values of a mapping."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [m for a in args if isinstance(a, type) or typing.get_args(a)
                for m in _element_metadata(a)]
    if origin is tuple:
        return _annotated_metadata(args[0])
    if origin is dict:
        return _annotated_metadata(args[1])
    return []


def _constraints(metadata: list[object]) -> list[str]:
    found: list[str] = []
    for item in metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                found.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, at.MinLen) and item.min_length == 1:
            found.append("not empty")
        if isinstance(item, at.MinLen) and item.min_length > 1:
            found.append(f"at least {item.min_length} characters")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            found.append(f"matches the pattern `{pattern}`")
        validator = isinstance(item, _VALIDATORS)
        if validator and item.func.__doc__:  # type: ignore[attr-defined]
            found.append(" ".join(item.func.__doc__.split()).replace("``", "`"))  # type: ignore[attr-defined]
    return list(dict.fromkeys(check.rstrip(".") for check in found))


def _annotated_metadata(annotation: Any) -> list[object]:
    """Constraints carried by the value's own type (``ColumnName``, ``Duration``), also when
    it may be null; not those of a list's items."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        found: list[object] = []
        for item in extra:
            found += list(getattr(item, "metadata", [])) or [item]
        return found + _annotated_metadata(base)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _annotated_metadata(arg)]
    return []


def _rule_docs(model: type[BaseModel]) -> list[str]:
    """The docstrings of the checks that look at several keys of one mapping at once."""
    return [inspect.cleandoc(d.func.__doc__).replace("``", "`")
            for d in model.__pydantic_decorators__.model_validators.values() if d.func.__doc__]


def _items(doc: str) -> list[str]:
    r"""A docstring's bullets (``- ...`` lines and their continuations), or the whole of it.

    >>> _items("- one\n  more\n- two")
    ['one more', 'two']
    """
    items: list[str] = []
    for line in doc.splitlines():
        if line.startswith("- ") or not items:
            items.append(line.removeprefix("- "))
        else:
            items[-1] += " " + line.strip()
    return [" ".join(item.split()) for item in items]
