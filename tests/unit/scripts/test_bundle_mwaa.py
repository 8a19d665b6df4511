"""MWAA bundle: layout, requirements, and the DAGs, plugins and triggers importing from the bundle alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from include.carrier_optimization.config.tenants import load_tenants
from scripts.bundle_mwaa import (
    MWAA_CONSTRAINED,
    build_bundle,
    constrained_names,
    mwaa_requirements,
    plugins_ignore,
)

ROOT = Path(__file__).resolve().parents[3]
CONSTRAINT_LINE = (
    '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"'
)

# Runs in a clean interpreter (`python -I`): sys.path is the standard library, the virtualenv's
# site-packages, the bundle's DAGs folder and the unzipped plugins folder; never the project root.
PROBE = r"""
import importlib, json, os, sys
dags, plugins, root, classpaths = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:] = [dags, plugins] + [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(root)]
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.0.x
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=dags)
triggers = {}
for classpath in classpaths:
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    triggers[classpath] = f"{cls.__module__}.{cls.__qualname__}"
from airflow import plugins_manager
if hasattr(plugins_manager, "_get_plugins"):
    loaded, plugin_errors = plugins_manager._get_plugins()
else:  # Airflow 3.0.x
    plugins_manager.ensure_plugins_loaded()
    loaded, plugin_errors = plugins_manager.plugins, plugins_manager.import_errors
for plugin in loaded:  # build the UI plugin's app: its imports must resolve in the bundle too
    for entry in getattr(plugin, "fastapi_apps", []):
        getattr(entry["app"], "factory", lambda: None)()
files = {
    name: getattr(mod, "__file__", None)
    for name, mod in list(sys.modules.items())
    if name.split(".")[0] in ("include", "plugins")
}
print(json.dumps({
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "triggers": triggers,
    "plugins": sorted(str(p.name) for p in loaded),
    "plugin_sources": sorted(str(getattr(p, "source", "")) for p in loaded),
    "plugin_errors": {k: str(v) for k, v in plugin_errors.items()},
    "module_files": files,
}))
"""


def trigger_classpaths() -> list[str]:
    """``plugins.triggers.<module>.<Class>`` of every trigger class in the source tree."""
    found = []
    for path in sorted((ROOT / "plugins" / "triggers").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Trigger"):
                found.append(f"plugins.triggers.{path.stem}.{node.name}")
    return found


def project_dag_ids() -> set[str]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0.x
        from airflow.models.dagbag import DagBag
    return set(DagBag(dag_folder=str(ROOT / "dags")).dag_ids)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mwaa")
    artifacts = build_bundle(out)
    unzipped = out / "plugins_unzipped"
    with zipfile.ZipFile(artifacts["plugins_zip"]) as archive:
        archive.extractall(unzipped)
    return {**artifacts, "out": out, "plugins": unzipped}


@pytest.fixture(scope="module")
def probe(bundle, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(bundle["dags"]),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(bundle["plugins"]),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            PROBE,
            str(bundle["dags"]),
            str(bundle["plugins"]),
            str(ROOT),
            json.dumps(trigger_classpaths()),
        ],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"bundle probe failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


class TestLayout:
    def test_dags_folder_holds_dag_files_config_and_the_library(self, bundle):
        dags = bundle["dags"]
        for path in (ROOT / "dags").iterdir():
            if path.is_file():
                assert (dags / path.name).read_bytes() == path.read_bytes(), path.name
        assert (dags / "include" / "carrier_optimization" / "core" / "cost.py").is_file()
        assert (dags / "include" / "__init__.py").is_file()
        assert "include/" in (dags / ".airflowignore").read_text().splitlines()
        assert not list(dags.rglob("__pycache__")) and not list(dags.rglob("*.pyc"))

    def test_plugins_zip_has_the_plugins_package_and_the_library_at_top_level(self, bundle):
        with zipfile.ZipFile(bundle["plugins_zip"]) as archive:
            names = set(archive.namelist())
            ignore = archive.read(".airflowignore").decode().splitlines()
        assert {
            "plugins/__init__.py",
            "plugins/triggers/sqs.py",
            "include/carrier_optimization/messaging/parsing.py",
        } <= names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert "include/" in ignore and "plugins/triggers/" in ignore
        assert "plugins/carrier_optimization_plugin.py" not in ignore

    def test_bundle_is_reproducible(self, bundle, tmp_path):
        again = build_bundle(tmp_path / "again")
        assert again["plugins_zip"].read_bytes() == bundle["plugins_zip"].read_bytes()
        assert again["requirements"].read_text() == bundle["requirements"].read_text()

    def test_rebuild_replaces_only_its_own_artifacts(self, tmp_path):
        out = tmp_path / "mwaa"
        build_bundle(out, startup=False)
        (out / "dags" / "stale.py").write_text("x = 1\n")
        (out / "notes.txt").write_text("keep me\n")
        artifacts = build_bundle(out, startup=False)
        assert not (out / "dags" / "stale.py").exists()
        assert (out / "notes.txt").read_text() == "keep me\n"
        assert "startup" not in artifacts and not (out / "startup.sh").exists()

    def test_startup_script_is_executable(self, bundle):
        startup = bundle["startup"]
        assert startup.stat().st_mode & 0o111
        assert "MPLBACKEND=Agg" in startup.read_text()


class TestRequirements:
    def test_constraint_line_first_then_unpinned_constrained_packages(self, bundle):
        lines = bundle["requirements"].read_text().splitlines()
        assert lines[0] == CONSTRAINT_LINE
        packages = [line for line in lines[1:] if line and not line.startswith("#")]
        assert "apache-airflow-providers-amazon[aiobotocore]" in packages
        assert "apache-airflow-providers-microsoft-mssql" in packages
        assert "apache-airflow-providers-redis" in packages
        assert not any(p.lower().startswith("apache-airflow==") for p in packages)
        assert "highspy==1.16.0" in packages  # not in the MWAA constraints: keeps the project pin
        for package in packages:
            name = package.split("[")[0].split("=")[0].lower()
            assert ("==" in package) != (name in MWAA_CONSTRAINED), package

    def test_every_project_runtime_requirement_is_listed(self, bundle):
        listed = {
            line.split("[")[0].split("=")[0].lower()
            for line in bundle["requirements"].read_text().splitlines()[1:]
            if line and not line.startswith("#")
        }
        wanted = {
            line.split("#")[0].strip().split("[")[0].split("=")[0].lower()
            for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.split("#")[0].strip()
        }
        assert listed == wanted - {"apache-airflow"}

    def test_constraints_file_decides_what_is_unpinned(self, tmp_path):
        constraints = tmp_path / "constraints.txt"
        constraints.write_text("# header\nNumPy==1.26.4\nsome_thing==1.0\n")
        assert constrained_names(constraints) == {"numpy", "some-thing"}
        text = mwaa_requirements(
            [
                "apache-airflow==3.3.2",
                "numpy==2.4.6  # pinned",
                "Some.Thing[x]==2.0",
                "-r other.txt",
                "pandas==3",
            ],
            airflow_version="3.2.1",
            constrained=constrained_names(constraints),
        )
        assert text.splitlines() == [
            '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.2.1/constraints-3.12.txt"',
            "# Built by scripts/bundle_mwaa.py for MWAA Airflow 3.2.1 (Python 3.12).",
            "numpy",
            "Some.Thing[x]",
            "pandas==3",
        ]

    def test_unparsable_requirement_is_named(self):
        with pytest.raises(ValueError, match=r"cannot parse '@@@'"):
            mwaa_requirements(["@@@"])


def test_plugins_ignore_keeps_only_plugin_modules(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "hooks").mkdir(parents=True)
    (plugins / "__init__.py").write_text("")
    (plugins / "helpers.py").write_text("X = 1\n")
    (plugins / "ui.py").write_text(
        "from airflow.plugins_manager import AirflowPlugin\nclass P(AirflowPlugin):\n    pass\n"
    )
    lines = [line for line in plugins_ignore(plugins).splitlines() if not line.startswith("#")]
    assert lines == ["include/", "plugins/__init__.py", "plugins/helpers.py", "plugins/hooks/"]


class TestImportFromTheBundle:
    def test_every_dag_file_imports_without_errors(self, probe):
        assert probe["import_errors"] == {}

    def test_expected_dag_ids(self, probe):
        tenants = {t.dag_id for t in load_tenants(ROOT / "dags" / "tenants.yaml")}
        assert tenants <= set(probe["dag_ids"])
        assert set(probe["dag_ids"]) == project_dag_ids()

    def test_trigger_classpaths_import(self, probe):
        classpaths = trigger_classpaths()
        assert "plugins.triggers.sqs.OptimizationRequestSqsTrigger" in classpaths
        assert probe["triggers"] == {c: c for c in classpaths}

    def test_library_and_plugins_come_from_the_bundle_only(self, probe, bundle):
        out = str(bundle["out"].resolve())
        strays = {
            name: path
            for name, path in probe["module_files"].items()
            if path is not None and not str(Path(path).resolve()).startswith(out)
        }
        assert not strays, f"modules imported from outside the bundle: {strays}"
        assert "include.carrier_optimization.messaging.parsing" in probe["module_files"]
        assert "include.carrier_optimization.reporting.sessions_view" in probe["module_files"]

    def test_plugin_manager_loads_only_plugin_modules_without_errors(self, probe):
        assert probe["plugin_errors"] == {}
        assert "carrier_optimization" in probe["plugins"]
        for source in probe["plugin_sources"]:
            assert "include/" not in source and "triggers/" not in source, source
