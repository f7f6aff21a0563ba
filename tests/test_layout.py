"""The layout's import rules, read from the source (nothing is imported, so a broken module cannot hide a rule):
the three model folders are peers that share only lower modules (data/, engine/), the lower modules import no
model, and the pipeline is the one place that composes them."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_FOLDERS = ("Unets", "SSL_convLSTM_Reconstructor", "forecasting")
LOWER = ("data", "engine")
ABOVE = (*MODEL_FOLDERS, "pipeline")


def imported_packages(path: Path) -> set:
    """Top-level package names a file imports anywhere (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def is_entry_script(path: Path) -> bool:
    return '__name__ == "__main__"' in path.read_text()


def library_modules(folder: str) -> list:
    return [p for p in sorted((REPO / folder).glob("*.py")) if not is_entry_script(p)]


def test_the_rules_see_the_modules_they_judge():
    """The rules below would pass vacuously on a renamed folder: each folder holds the modules it should."""
    for folder in (*MODEL_FOLDERS, *LOWER, "pipeline"):
        assert library_modules(folder), folder
    assert {"unet.py", "model.py", "simvp.py", "dynamics.py"} <= {
        p.name for f in MODEL_FOLDERS for p in library_modules(f)}
    assert "forecasting" in imported_packages(REPO / "pipeline" / "predictors.py")  # the parser does see imports


@pytest.mark.parametrize("folder", MODEL_FOLDERS)
def test_model_folders_are_peers(folder):
    """A model folder's library modules import no other model folder, nor the pipeline above them."""
    others = set(ABOVE) - {folder}
    for path in library_modules(folder):
        bad = imported_packages(path) & others
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}: share through data/ or engine/ instead"


def test_the_reconstructor_computes_no_reference():
    """The reconstructor, trainer included, takes its reference frames as input: the pipeline makes them."""
    for path in sorted((REPO / "SSL_convLSTM_Reconstructor").glob("*.py")):
        assert "forecasting" not in imported_packages(path), path.relative_to(REPO)


@pytest.mark.parametrize("folder", LOWER)
def test_lower_modules_import_no_model(folder):
    for path in sorted((REPO / folder).glob("*.py")):
        bad = imported_packages(path) & set(ABOVE)
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_no_entry_script_edits_sys_path():
    """The repository is installed (`-e .` in requirements.txt): scripts import its packages as they are."""
    for path in sorted(REPO.rglob("*.py")):
        if "tests" in path.relative_to(REPO).parts or ".git" in path.parts:
            continue
        assert "sys.path.insert" not in path.read_text() and "sys.path.append" not in path.read_text(), path


def test_an_old_flag_spelling_still_works_hidden_and_named(capsys):
    """One vocabulary: a renamed flag's old spelling is accepted for one release, absent from --help, and says
    its new name; range checks name the new flag."""
    import argparse

    from engine.flags import add_old_spellings, at_least, check_flags

    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--num_workers", dest="workers", type=int, default=2)
    add_old_spellings(p, {"--workers": "--num_workers"})
    assert p.parse_args(["--workers", "5"]).workers == 5 and p.parse_args([]).workers == 2
    capsys.readouterr()
    assert "--workers" not in p.format_help()
    p.parse_args(["--workers", "1"])
    assert "--workers is now --num_workers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        check_flags(p, p.parse_args(["--workers", "-1"]), {"workers": at_least(0)})
    err = capsys.readouterr().err
    assert "--num_workers must be >= 0, got -1" in err and err.count("error:") == 1
