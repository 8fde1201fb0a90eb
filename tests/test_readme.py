"""The README names only commands and options that exist."""

import re
from pathlib import Path

from typer.main import get_command

from pairclass.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = get_command(app).commands


def options(command):
    return {opt for param in COMMANDS[command].params for opt in param.opts + param.secondary_opts}


def readme_invocations():
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split()
            if words[:1] == ["pairclass"]:
                yield words[1], [w.split("=")[0] for w in words[2:] if w.startswith("--")]


def test_every_command_in_the_readme_exists_with_its_options():
    seen = list(readme_invocations())
    assert {"classify", "embed", "embed-classes", "audit", "train", "evaluate-encoder"} <= {c for c, _ in seen}
    for command, opts in seen:
        assert command in COMMANDS, command
        assert set(opts) <= options(command), (command, set(opts) - options(command))


def test_every_option_the_readme_names_exists_somewhere():
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", README))
    known = set().union(*(options(c) for c in COMMANDS))
    assert named - {"--help"} <= known, named - known


def test_every_method_in_the_readme_table_is_registered():
    from pairclass.methods import METHODS

    table = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?", README, flags=re.M)
    assert {m for row in table for m in row if m} == set(METHODS)
