"""The package's layers: imports only go down (deploy files -> deploys -> operations -> facts
-> probes, with model, render and policy beside them), and each name is imported from the
module that defines it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "isaac_deploy"
# a layer may import the layers listed for it (and itself); nothing else of the package
ALLOWED = {
    "model": {"model"},
    "probes": {"probes"},
    "render": {"render", "model"},
    "facts": {"facts", "model", "probes"},
    "policy": {"policy", "facts", "model"},
    "connectors": {"connectors", "model"},
    "operations": {"operations", "policy", "facts", "render", "model", "probes"},
    "deploys": {"deploys", "operations", "policy", "facts", "render", "model", "probes"},
    "cli": {"cli", "policy", "facts", "render", "model", "probes", "connectors"},
}
THIRD_PARTY_FREE = {"model", "probes"}  # model: pyinfra's error base only; probes: stdlib only


def layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, also inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found.append((node.lineno, node.module or ""))
    return found


def modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE]


def test_every_module_belongs_to_a_layer():
    assert {layer(p) for p in modules()} <= set(ALLOWED)
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_imports_only_go_down():
    wrong = []
    for path in modules():
        own = layer(path)
        for line, module in imports(path):
            parts = module.split(".")
            if parts[0] == "isaac_deploy":
                if len(parts) < 2 or parts[1] not in ALLOWED[own]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {module}")
            elif own in THIRD_PARTY_FREE and parts[0] not in sys.stdlib_module_names:
                if not (own == "model" and module == "pyinfra.api.exceptions"):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {module}")
    assert wrong == []


def test_deploy_files_only_call_deploys():
    for path in (ROOT / "deploy").glob("*.py"):
        for line, module in imports(path):
            if module.startswith("isaac_deploy"):
                assert module.startswith("isaac_deploy.deploys"), f"{path}:{line} {module}"


def definitions(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_names_are_imported_from_where_they_are_defined():
    """No re-exports: ``from a import b`` finds ``b`` defined in ``a`` (or ``a.b`` a module)."""
    wrong = []
    files = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "deploy").glob("*.py"),
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("isaac_")):
                continue
            target = ROOT.joinpath(*node.module.split("."))
            module = (
                target.with_suffix(".py")
                if target.with_suffix(".py").is_file()
                else target / "__init__.py"
            )
            defined = definitions(module)
            for alias in node.names:
                if (
                    alias.name not in defined
                    and not (target / f"{alias.name}.py").is_file()
                    and not (target / alias.name).is_dir()
                ):
                    wrong.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} {alias.name} from {node.module}"
                    )
    assert wrong == []
