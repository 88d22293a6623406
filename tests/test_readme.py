"""README.md is a front door, not a notebook: at most 200 lines, every relative link (there and in docs/) leads to a
file of the repository, its test command is the one .ci/run runs, and its cheap commands run as written: every
`fer-hf ...` line of its bash blocks, every `python <script>.py --help` it names and its Python blocks, in a
scratch folder that holds only examples/ and model_cards/ (links to the repository's)."""

import re
import sys

import pytest
from conftest import REPO

README = REPO / "README.md"
TEXT = README.read_text()
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"(?ms)^```{language}\n(.*?)^```", TEXT)


def test_readme_is_at_most_200_lines():
    assert len(TEXT.splitlines()) <= 200


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix()
                                                        for p in (REPO / "docs").glob("*.md")), "examples/README.md"])
def test_every_relative_link_resolves_to_a_file_in_the_repository(page):
    source = REPO / page
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (source.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page}: broken link {target}"
        assert path.is_relative_to(REPO.resolve()), f"{page}: {target} points outside the repository"


def test_the_test_command_is_the_one_ci_runs():
    """README's second command and the last line of .ci/run are the same string."""
    readme_commands = [block.strip() for block in code_blocks("bash") if "pytest" in block]
    ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_commands == [ci_command]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    for name in ("examples", "model_cards"):
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_as_main(argv: list[str], module: str | None = None, path: str | None = None) -> None:
    """``python -m module ARGS`` / ``python path ARGS`` in this process (torch and fer_hf are imported once for
    every command, which keeps the test fast); a non-zero exit fails."""
    import runpy
    from unittest import mock

    with mock.patch.object(sys, "argv", [path or module, *argv]):
        try:
            if module:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(path, run_name="__main__")
        except SystemExit as done:
            assert done.code in (0, None), f"{argv}: exit status {done.code}"


def cli_commands() -> list[str]:
    lines = [line.strip() for block in code_blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line.startswith("fer-hf ")]


def test_readme_names_cheap_commands():
    assert "fer-hf --help" in cli_commands() and any(" predict examples/" in c for c in cli_commands())


@pytest.mark.parametrize("command", cli_commands())
def test_cli_command_runs_as_written(command, scratch, capsys):
    """`fer-hf` is `python -m fer_hf` (the same entry point), run from this checkout."""
    import shlex

    run_as_main(shlex.split(command)[1:], module="fer_hf")
    printed = capsys.readouterr().out
    if " predict " in f" {command} ":
        assert "error:" not in printed and "no face" not in printed
        for output in re.findall(r"--(?:output|annotate) (\S+)", command):
            assert (scratch / output).exists(), output


@pytest.mark.parametrize("command", sorted(set(re.findall(r"`(python [\w/.]+\.py --help)`", TEXT))))
def test_help_command_runs(command, scratch):
    run_as_main(["--help"], path=str(REPO / command.split()[1]))


def test_python_blocks_run_as_written(scratch, capsys):
    """The Python blocks, one after the other in one namespace (the second uses the first one's `faces`)."""
    blocks = code_blocks("python")
    assert blocks
    exec(compile("\n".join(blocks), str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "'top_emotion': " in printed and "'label': " in printed
    assert (scratch / "annotated.png").is_file()
