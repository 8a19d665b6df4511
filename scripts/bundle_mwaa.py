"""Build the Amazon MWAA deployment layout of the package: ``dags/``, ``plugins.zip``, ``requirements.txt``.

``python -m scripts.bundle_mwaa --out build/mwaa`` (from the project root) writes:

- ``dags/``: the DAG files and their config (``tenants.yaml``), the library package ``include/`` inside
  it (MWAA puts the DAGs folder on ``sys.path``, so ``include.carrier_optimization`` imports), and an
  ``.airflowignore`` so the DAG processor does not parse ``include/``;
- ``plugins.zip``: the ``plugins/`` package at its top level (MWAA unzips it to
  ``/usr/local/airflow/plugins``, on ``sys.path``, so ``plugins.triggers.sqs`` imports) and a copy of
  ``include/``, because the triggerer has only the plugins folder on its path and the trigger imports
  the library. Its ``.airflowignore`` leaves only the modules defining an ``AirflowPlugin`` to the
  plugin manager, which otherwise executes every ``.py`` file there as a top-level module (including
  ``include/carrier_optimization/__main__.py``, the command line);
- ``requirements.txt``: the MWAA constraints line first, then the project's runtime requirements
  without Airflow itself, unpinned where the constraints file pins them;
- ``startup.sh`` (unless ``--no-startup``): environment for headless chart rendering.

Zip entries carry a fixed time stamp, so an unchanged tree gives a byte-identical ``plugins.zip`` (and no
new S3 object version).
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

LOG = logging.getLogger("scripts.bundle_mwaa")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AIRFLOW_VERSION = "3.0.6"
DEFAULT_PYTHON_VERSION = "3.12"
CONSTRAINT_URL = (
    "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"
)
#: Distributions pinned by the MWAA 3.0.6 constraints file (constraints-3.0.6/constraints-3.12.txt) that
#: the product needs: listed unpinned so the constraints decide. The rest keep the project's pin.
MWAA_CONSTRAINED = frozenset(
    {
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-common-sql",
        "apache-airflow-providers-http",
        "apache-airflow-providers-microsoft-mssql",
        "apache-airflow-providers-redis",
        "apache-airflow-providers-smtp",
        "apache-airflow-providers-standard",
        "numpy",
        "openpyxl",
        "pandas",
        "pymssql",
        "pyyaml",
        "redis",
        "requests",
        "sqlalchemy",
    }
)
#: Preinstalled by MWAA; listing it would try to replace the environment's Airflow.
PREINSTALLED = frozenset({"apache-airflow"})
SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
STARTUP_SH = """#!/bin/sh
# MWAA startup script: runs on every container before requirements are installed.
# Charts of the result report render headless, with a writable font cache.
export MPLBACKEND=Agg
export MPLCONFIGDIR=/tmp/matplotlib
"""
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _files(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` in a stable order, without caches and compiled files."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            path.is_file()
            and not SKIPPED_PARTS.intersection(rel.parts)
            and path.suffix not in {".pyc", ".pyo"}
        ):
            yield path


def _copy_tree(source: Path, target: Path) -> int:
    count = 0
    for path in _files(source):
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        count += 1
    return count


def _defines_plugin(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                if name == "AirflowPlugin":
                    return True
    return False


def plugins_ignore(plugins: Path) -> str:
    """``.airflowignore`` of ``plugins.zip``: everything but the modules defining an ``AirflowPlugin``.

    The entries are plain relative paths, which mean the same under both ignore syntaxes (``glob`` and
    ``regexp``).
    """
    lines = [
        "# Airflow executes every .py file of the plugins folder as a top-level module; only the plugin",
        "# modules are meant for that. The packages below are imported normally (plugins.*, include.*).",
        "include/",
    ]
    for entry in sorted(plugins.iterdir()):
        if entry.name in SKIPPED_PARTS or entry.name.startswith("."):
            continue
        if entry.is_dir():
            lines.append(f"plugins/{entry.name}/")
        elif entry.suffix == ".py" and not _defines_plugin(entry):
            lines.append(f"plugins/{entry.name}")
    return "\n".join(lines) + "\n"


def mwaa_requirements(
    lines: Iterable[str],
    *,
    airflow_version: str = DEFAULT_AIRFLOW_VERSION,
    python_version: str = DEFAULT_PYTHON_VERSION,
    constrained: frozenset[str] = MWAA_CONSTRAINED,
) -> str:
    """The MWAA ``requirements.txt`` from the project's: constraints line first, Airflow dropped.

    A requirement whose distribution the constraints file pins loses its version (the constraints decide);
    the others keep the project's pin. Comments, blank lines and ``-r``/``-c`` options are dropped.
    """
    out = [
        f'--constraint "{CONSTRAINT_URL.format(airflow=airflow_version, python=python_version)}"',
        f"# Built by scripts/bundle_mwaa.py for MWAA Airflow {airflow_version} (Python {python_version}).",
    ]
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _REQUIREMENT.match(line)
        if match is None:
            raise ValueError(f"requirements.txt: cannot parse {raw.strip()!r}")
        name, extras, spec = match.group(1), match.group(2) or "", match.group(3).strip()
        key = _canonical(name)
        if key in PREINSTALLED:
            continue
        out.append(f"{name}{extras}" if key in constrained else f"{name}{extras}{spec}")
    return "\n".join(out) + "\n"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constrained_names(constraints_file: Path) -> frozenset[str]:
    """Distribution names pinned by a downloaded constraints file."""
    names = set()
    for raw in constraints_file.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            names.add(_canonical(line.split("==", 1)[0].split("[", 1)[0]))
    return frozenset(names)


def _zip(target: Path, entries: Iterable[tuple[str, bytes]]) -> int:
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
            count += 1
    return count


def build_bundle(
    out: Path,
    *,
    root: Path = ROOT,
    airflow_version: str = DEFAULT_AIRFLOW_VERSION,
    python_version: str = DEFAULT_PYTHON_VERSION,
    constraints_file: Path | None = None,
    startup: bool = True,
) -> dict[str, Path]:
    """Write the MWAA layout into ``out`` (replacing a previous bundle there); returns the artifact paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    artifacts = {
        "dags": out / "dags",
        "plugins_zip": out / "plugins.zip",
        "requirements": out / "requirements.txt",
        "startup": out / "startup.sh",
    }
    # Remove only what this command writes: `out` may be a folder holding other things.
    shutil.rmtree(artifacts["dags"], ignore_errors=True)
    for key in ("plugins_zip", "requirements", "startup"):
        artifacts[key].unlink(missing_ok=True)

    dags = artifacts["dags"]
    n_dags = _copy_tree(root / "dags", dags)
    n_lib = _copy_tree(root / "include", dags / "include")
    (dags / ".airflowignore").write_text(
        "# The library package: imported by the DAG files, never parsed for DAGs.\ninclude/\n",
        encoding="utf-8",
    )

    entries = [(".airflowignore", plugins_ignore(root / "plugins").encode())]
    for top in ("plugins", "include"):
        for path in _files(root / top):
            entries.append((path.relative_to(root).as_posix(), path.read_bytes()))
    n_zip = _zip(artifacts["plugins_zip"], entries)

    constrained = constrained_names(constraints_file) if constraints_file else MWAA_CONSTRAINED
    artifacts["requirements"].write_text(
        mwaa_requirements(
            (root / "requirements.txt").read_text(encoding="utf-8").splitlines(),
            airflow_version=airflow_version,
            python_version=python_version,
            constrained=constrained,
        ),
        encoding="utf-8",
    )
    if startup:
        artifacts["startup"].write_text(STARTUP_SH, encoding="utf-8")
        artifacts["startup"].chmod(0o755)
    else:
        del artifacts["startup"]
    LOG.info(
        "MWAA bundle in %s: dags/ (%d DAG-folder files + %d library files), plugins.zip (%d entries), "
        "requirements.txt%s",
        out,
        n_dags,
        n_lib,
        n_zip,
        ", startup.sh" if startup else "",
    )
    return artifacts


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m scripts.bundle_mwaa --out build/mwaa``."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bundle_mwaa", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mwaa", help="output folder")
    parser.add_argument("--airflow-version", default=DEFAULT_AIRFLOW_VERSION, help="MWAA Airflow version")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION, help="MWAA Python version")
    parser.add_argument(
        "--constraints-file",
        type=Path,
        help="a downloaded constraints file: unpin exactly what it pins (default: the built-in list)",
    )
    parser.add_argument("--no-startup", action="store_true", help="do not write startup.sh")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_bundle(
        args.out,
        airflow_version=args.airflow_version,
        python_version=args.python_version,
        constraints_file=args.constraints_file,
        startup=not args.no_startup,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
