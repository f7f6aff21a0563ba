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
