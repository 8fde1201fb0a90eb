"""The jinja2 environment of the report templates, and the atomic write of a page."""

from __future__ import annotations

from functools import cache

import jinja2

from ..io import atomic_path

__all__ = ["write_page"]


def _number(value, digits=3):
    """A float for a table cell: fixed digits, an en dash for a missing value."""
    return "\u2013" if value is None else f"{value:.{digits}f}"


@cache
def _environment():
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pairclass.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    return env


def write_page(template, path, **context):
    """Render ``template`` with ``context`` and write it to ``path`` atomically (UTF-8)."""
    html = _environment().get_template(template).render(**context)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
