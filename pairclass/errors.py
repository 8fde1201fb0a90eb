"""Exception types raised by the library. The CLI maps them to one-line messages and exit code 2."""


class InputError(ValueError):
    """Bad user input: a file, column or array that cannot be used.

    The message is one line, ``<file>: <column>: <problem>`` where a file and column apply.
    """


def input_error(problem, *, path=None, column=None):
    """Build an :class:`InputError` whose message names the file and column that caused it."""
    parts = [str(p) for p in (path, column) if p is not None]
    return InputError(": ".join([*parts, problem]))
