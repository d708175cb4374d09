"""Build-time pages written from the code: the configuration reference (from the config model)
and the command-line reference (from the click commands). A page holds a marker comment; the
hook replaces it, so the site cannot disagree with the code."""

from __future__ import annotations

from typing import Any

import click

CONFIG_MARKER = "<!-- config-reference -->"
CLI_MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if CONFIG_MARKER in markdown:
        from hindsight.config_reference import render_reference

        markdown = markdown.replace(CONFIG_MARKER, render_reference())
    if CLI_MARKER in markdown:
        from hindsight.cli import cli

        markdown = markdown.replace(CLI_MARKER, "\n".join(_commands(cli, "hindsight")))
    return markdown


def _commands(command: click.Command, path: str) -> list[str]:
    """One section per command: its usage, its help and its options, as ``--help`` prints."""
    context = click.Context(command, info_name=path, terminal_width=100, max_content_width=100)
    lines = [f"### `{path}`", "", "```text", command.get_help(context).rstrip(), "```", ""]
    if isinstance(command, click.Group):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                lines += _commands(sub, f"{path} {name}")
    return lines
