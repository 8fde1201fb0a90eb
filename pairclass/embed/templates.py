"""Prompt templates for class embeddings (prompt ensembling)."""

from __future__ import annotations

from ..errors import input_error
from ..io import read_lines

__all__ = ["DEFAULT_TEMPLATES", "load_templates", "fill_templates"]

DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a product photo of a {}.",
    "a photo of a {}, a type of product.",
    "an online shop listing for a {}.",
    "{}",
)


def load_templates(templates="default"):
    """Prompt templates: ``"default"``, a sequence of strings, or a text file with one per line.

    Each template holds ``{}`` exactly once, where the class text goes.

    Examples
    --------
    >>> load_templates(["a photo of a {}.", "{}"])
    ['a photo of a {}.', '{}']
    >>> load_templates(["a photo"])
    Traceback (most recent call last):
    ...
    pairclass.errors.InputError: templates: template 1 'a photo' must contain {} exactly once
    """
    if isinstance(templates, str) and templates == "default":
        return list(DEFAULT_TEMPLATES)
    if isinstance(templates, (list, tuple)):
        source, lines = "templates", list(templates)
    else:
        source, lines = templates, read_lines(templates)
    if not lines:
        raise input_error("no templates", path=source)
    for i, t in enumerate(lines, 1):
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            raise input_error(f"template {i} {t!r} must contain {{}} exactly once", path=source)
    return lines


def fill_templates(templates, text):
    """The prompts for one class.

    Examples
    --------
    >>> fill_templates(["a photo of a {}.", "{}"], "shoe")
    ['a photo of a shoe.', 'shoe']
    """
    return [t.replace("{}", text) for t in templates]
