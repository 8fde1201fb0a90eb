"""Engines run a scan: a map function over every batch of a source, results merged in batch order.

They know nothing of the math (that is in the plans' map functions); see :mod:`.local`.
"""

from .local import LocalEngine

__all__ = ["ENGINES", "LocalEngine", "get_engine"]

ENGINES = ("local",)


def get_engine(name="local", **options):
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    from ..errors import InputError

    if name == "local":
        return LocalEngine(**options)
    raise InputError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
