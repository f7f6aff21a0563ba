"""Every command that README.md and docs/*.md show names a script of the repository whose parser takes every flag
the command uses (in its current spelling): a renamed flag or a moved script breaks this test, not a reader. The
scripts are run in this process up to their argument parser (nothing else of them runs)."""
import re
from pathlib import Path

import pytest

from conftest import run_until_parsed

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:python|torchrun)\s[^`\n]*?(\S+\.py)\b([^`\n]*)")


def documented_commands() -> list:
    """(document, script, [flags]) for every `python X.py ...` or `torchrun ... X.py ...` in the docs: code blocks
    with their continuation lines joined, and inline code."""
    found = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for match in COMMAND.finditer(text):
            script, rest = match.group(1), match.group(2).split("#")[0].split("&&")[0]
            if not (REPO / script).is_file() and script.startswith(("scripts/", "Unets/", "SSL_", "forecasting/")):
                found.append((doc.name, script, None))  # a script that does not exist: reported below
                continue
            if (REPO / script).is_file():
                flags = [t.split("=")[0] for t in re.split(r"[\s\[\]|]+", rest) if t.startswith("--")]
                found.append((doc.name, script, flags))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 30 and {doc for doc, _, _ in COMMANDS} >= {"README.md", "RESULTS.md", "ENGINEERING.md"}


def script_flags(script: str, argv: list, monkeypatch) -> set:
    """The flags a script's parsers take for `argv` (a method's flags depend on --method)."""
    return run_until_parsed(script, argv, monkeypatch, check_values=False)


@pytest.mark.parametrize("doc,script,flags", COMMANDS, ids=[f"{d}:{s}" for d, s, _ in COMMANDS])
def test_every_documented_command_parses(doc, script, flags, monkeypatch):
    assert flags is not None, f"{doc} names {script}, which does not exist"
    argv = []
    if "--method" in flags:  # the method's own flags come with it
        text = (REPO / "docs" / doc if doc != "README.md" else REPO / doc).read_text()
        argv = ["--method", re.search(rf"{re.escape(script)}\s+--method\s+(\w+)", text).group(1)]
    known = script_flags(script, argv, monkeypatch)
    unknown = [f for f in flags if f not in known]
    assert not unknown, f"{doc}: {script} has no flag {unknown} (its flags: {sorted(known)})"


def test_a_renamed_flag_in_the_docs_would_fail(monkeypatch):
    """The check above is not vacuous: an old spelling is not a flag the docs may show."""
    known = script_flags("scripts/plot_curves.py", [], monkeypatch)
    assert "--out" in known and "--out_dir" not in known


ENTRY_SCRIPTS = [str(p.relative_to(REPO)) for p in sorted(REPO.rglob("*.py"))
                 if "tests" not in p.relative_to(REPO).parts and '__name__ == "__main__"' in p.read_text()]


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_every_entry_script_builds_its_parser(script, monkeypatch):
    """Documented or not, every command of the repository gets as far as parsing its flags (its imports and
    module-level code run) and offers --help."""
    argv = ["--method", "copy"] if script == "scripts/predict.py" else []  # its flags follow the method
    assert "--help" in script_flags(script, argv, monkeypatch)
