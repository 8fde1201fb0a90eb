"""Engines run a scan: a map function over every batch of a source, results merged in batch order.

They know nothing of the math (that is in the plans' map functions): :mod:`.local` runs threads on
one machine, :mod:`.raydata` runs Ray Data jobs on a cluster (the ``ray`` extra).
"""

from .local import LocalEngine

__all__ = ["ENGINES", "LocalEngine", "check_engine", "get_engine"]

ENGINES = ("local", "ray")


def check_engine(name, address=None):
    """Refuse in one line an unknown engine, a Ray address for another engine, or the Ray engine
    without ray installed."""
    from ..errors import InputError

    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    if name != "ray" and address is not None:
        raise InputError("--ray-address needs --engine ray")
    if name == "ray":
        from .raydata import require_ray

        require_ray()


def get_engine(name="local", *, workers=None, address=None):
    """The engine called ``name`` (one of :data:`ENGINES`); ``address`` is the Ray cluster's."""
    check_engine(name, address)
    if name == "local":
        return LocalEngine(workers)
    from .raydata import RayEngine

    return RayEngine(address, workers)
