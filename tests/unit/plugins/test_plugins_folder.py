"""What Airflow's plugin loader executes from the plugins folder: the plugin modules, nothing else.

The loader runs every .py file it finds as a top-level module named after the file, so without
``plugins/.airflowignore`` ``plugins/hooks/email.py`` becomes ``sys.modules["email"]`` and a later
``import email.utils`` (marshmallow, under the FAB auth manager) fails in the api-server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts.bundle_mwaa import _defines_plugin

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_the_loader_finds_only_the_modules_defining_a_plugin(syntax):
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    found = {
        Path(p) for p in find_path_from_directory(PLUGINS, ".airflowignore", syntax) if p.endswith(".py")
    }
    plugin_modules = {p for p in PLUGINS.rglob("*.py") if _defines_plugin(p)}
    assert found == plugin_modules
    assert not {p.stem for p in found} & set(sys.stdlib_module_names)
