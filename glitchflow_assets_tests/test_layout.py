"""The map of the code in README's Layout stays true: every module is listed under its folder, and each folder keeps
its rule (core imports no Dagster, defs/ opens no file, lib/ holds no asset, only settings reads the environment)."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "glitchflow_assets"
README = PACKAGE.parent / "README.md"
FILE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "File", "atomic_path", "write_artifact"}


def _layout() -> dict[str, set[str]]:
    """folder -> modules, from README's Layout table."""
    section = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|$", section, flags=re.M)
    assert rows, "README's Layout section has no table of folders"
    return {folder.rstrip("/"): {m.strip() for m in modules.split(",")} for folder, modules in rows}


def _modules() -> dict[str, set[str]]:
    """folder -> modules on disk (a subpackage's modules named relative to its listed folder: ``dsp/whitening``)."""
    layout = _layout()
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name == "__init__":
            continue
        folders = [f for f in layout if f == "." or relative.as_posix().startswith(f + "/")]
        folder = max(folders, key=len) if folders else relative.parent.as_posix()
        name = relative.as_posix() if folder == "." else relative.as_posix()[len(folder) + 1 :]
        found.setdefault(folder, set()).add(name)
    return found


def test_every_module_is_in_the_layout_table_and_every_listed_one_exists():
    assert _modules() == _layout()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_dagster(path):
    assert not {n for n in _imports(_tree(path)) if n.split(".")[0].startswith("dagster") or n.startswith("glitchflow_assets.defs")}
    assert not {n for n in _imports(_tree(path)) if n.startswith("glitchflow_assets.lib")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "defs").glob("*.py")), ids=lambda p: p.name)
def test_defs_open_no_file_and_import_no_other_asset_module(path):
    tree = _tree(path)
    calls = {
        n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "") for n in ast.walk(tree) if isinstance(n, ast.Call)
    }
    assert not calls & FILE_CALLS and "h5py" not in _imports(tree)
    if path.name != "families.py":  # the one module that assembles the asset modules
        assert not {n for n in _imports(tree) if n.startswith("glitchflow_assets.defs")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "lib").glob("*.py")), ids=lambda p: p.name)
def test_lib_holds_no_asset(path):
    tree = _tree(path)
    decorators = {ast.unparse(d).split("(")[0] for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for d in n.decorator_list}
    assert not decorators & {"run_asset", "dg.asset", "dg.multi_asset", "dg.asset_check"}
    assert not {n for n in _imports(tree) if n.startswith("glitchflow_assets.defs")}


def test_only_settings_reads_the_environment():
    readers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(_tree(path)):
            text = ast.unparse(node) if isinstance(node, ast.Call) else ""
            if text.startswith(("os.environ.get(", "os.getenv(")) and path.name != "settings.py":
                readers.append(f"{path.relative_to(PACKAGE)}: {text}")
    assert not readers


def test_the_configuration_table_lists_every_variable_settings_reads():
    tree = _tree(PACKAGE / "core" / "settings.py")
    variables = {
        n.value.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and str(n.value.value).isupper()
    }
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert variables and not {v for v in variables if f"`{v}`" not in table}
