"""Layering and layout rules of STYLE.md §4 (1-4, 7), checked on the source tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "include"
PLUGINS = ROOT / "plugins"
DAGS = ROOT / "dags"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_library_imports_no_airflow_plugins_or_dags():
    offenders = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _modules(LIBRARY)
        for line, name in _imports(p)
        if name.split(".")[0] in {"airflow", "plugins", "dags"}
    ]
    assert not offenders, "include/ must not import Airflow, plugins or dags:\n" + "\n".join(offenders)


def test_plugins_never_import_dags():
    offenders = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _modules(PLUGINS)
        for line, name in _imports(p)
        if name.split(".")[0] == "dags"
    ]
    assert not offenders, "\n".join(offenders)


ROLE_SUFFIX = {"hooks": "Hook", "operators": "Operator", "sensors": "Sensor", "triggers": "Trigger"}


@pytest.mark.parametrize("role", sorted(ROLE_SUFFIX))
def test_plugin_classes_are_named_after_their_role_folder(role):
    offenders = []
    for path in _modules(PLUGINS / role):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                if not node.name.endswith(ROLE_SUFFIX[role]):
                    offenders.append(
                        f"{path.relative_to(ROOT)}: {node.name} should end with {ROLE_SUFFIX[role]}"
                    )
    assert not offenders, "\n".join(offenders)


def test_every_module_has_a_mirrored_test_file():
    missing = []
    for folder in (LIBRARY, PLUGINS):
        for path in _modules(folder):
            if path.name in {"__init__.py", "__main__.py"}:
                continue
            rel = path.relative_to(ROOT)
            expected = ROOT / "tests" / "unit" / rel.parent / f"test_{path.name}"
            if not expected.exists():
                missing.append(f"{rel} -> {expected.relative_to(ROOT)}")
    assert not missing, "modules without a test file:\n" + "\n".join(missing)


def test_version_comparisons_live_only_in_the_compat_module():
    pattern = re.compile(r"AIRFLOW_V_|Version\(|__version__")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules(PLUGINS) + _modules(DAGS) + _modules(LIBRARY)
        if p.name != "compat.py" and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"version gates outside plugins/compat.py: {offenders}"


def _template_fields(cls: ast.ClassDef) -> list[str]:
    for node in cls.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "template_fields" for t in targets) and node.value:
                return [elt.value for elt in getattr(node.value, "elts", []) if isinstance(elt, ast.Constant)]
    return []


@pytest.mark.parametrize("role", ["operators", "sensors"])
def test_template_fields_are_sorted_and_assigned_verbatim(role):
    problems = []
    for path in _modules(PLUGINS / role):
        for cls in [
            n for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef)
        ]:
            fields = _template_fields(cls)
            if not fields:
                continue
            if fields != sorted(fields):
                problems.append(f"{cls.name}: template_fields not sorted")
            init = next(
                (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
            )
            if init is None:
                continue
            assigned = {}
            for stmt in ast.walk(init):
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target = stmt.targets[0]
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        assigned[target.attr] = stmt.value
            for name in fields:
                value = assigned.get(name)
                ok = isinstance(value, ast.Name) and value.id == name
                ok = ok or (
                    isinstance(value, ast.BoolOp)
                    and isinstance(value.values[0], ast.Name)
                    and value.values[0].id == name
                )
                if not ok:
                    problems.append(f"{cls.name}.{name} is not assigned verbatim in __init__")
    assert not problems, "\n".join(problems)


CORE = LIBRARY / "carrier_optimization" / "core"
PIPELINE = LIBRARY / "carrier_optimization" / "pipeline"
ABOVE_CORE = {"amop", "pipeline", "messaging", "sync", "reporting"}


def test_core_imports_nothing_above_it():
    """``core/`` is pure: no AMOP tables, steps, messages, carrier sync or reports (docs/architecture.md)."""
    offenders = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _modules(CORE)
        for line, name in _imports(p)
        if name.startswith("include.carrier_optimization.") and name.split(".")[2] in ABOVE_CORE
    ]
    assert not offenders, (
        "core/ must import none of amop, pipeline, messaging, sync, reporting:\n" + "\n".join(offenders)
    )


SQL_BUILDERS = {"select", "insert", "update", "delete", "text"}


def _sql_built(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that build SQL: ``select(...)``, ``sa.update(...)``, ``func.<name>(...)`` and the like."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        if isinstance(target, ast.Name) and target.id in SQL_BUILDERS:
            found.append((node.lineno, target.id))
        elif isinstance(target, ast.Attribute):
            owner = target.value
            if isinstance(owner, ast.Name) and owner.id == "func":
                found.append((node.lineno, f"func.{target.attr}"))
            elif isinstance(owner, ast.Name) and owner.id in {"sa", "sqlalchemy"}:
                found.append((node.lineno, f"{owner.id}.{target.attr}"))
    return found


def test_pipeline_builds_no_sql():
    """The steps call the ``amop/`` repositories; they import only ``sqlalchemy.engine`` types."""
    offenders = []
    for path in _modules(PIPELINE):
        rel = path.relative_to(ROOT)
        offenders += [
            f"{rel}:{line} imports {name}"
            for line, name in _imports(path)
            if name.split(".")[0] == "sqlalchemy" and name != "sqlalchemy.engine"
        ]
        offenders += [
            f"{rel}:{line} builds SQL ({call})"
            for line, call in _sql_built(ast.parse(path.read_text(encoding="utf-8")))
        ]
    assert not offenders, "pipeline/ must leave SQL to amop/:\n" + "\n".join(offenders)
