"""The compat module: version constants computed once, every exported name, default_deferrable from config."""

from __future__ import annotations

import enum
import inspect
import sys

import airflow
import pytest
from packaging.version import Version

import plugins.compat as compat


class TestVersion:
    def test_version_is_airflows(self):
        assert compat.AIRFLOW_VERSION == airflow.__version__
        assert isinstance(compat.AIRFLOW_VERSION, str)

    def test_constants_follow_the_base_version(self):
        base = Version(Version(airflow.__version__).base_version)
        assert compat.AIRFLOW_V_3_0_PLUS is (base >= Version("3.0.0"))
        assert compat.AIRFLOW_V_3_1_PLUS is (base >= Version("3.1.0"))

    def test_this_package_runs_on_airflow_3(self):
        assert compat.AIRFLOW_V_3_0_PLUS is True

    def test_pre_release_counts_as_its_release(self, monkeypatch):
        # "3.1.0rc1" < "3.1.0" in PEP 440; the base version makes a release candidate count as 3.1.
        import importlib

        monkeypatch.setattr(airflow, "__version__", "3.1.0rc1")
        monkeypatch.delitem(sys.modules, "plugins.compat")
        try:
            fresh = importlib.import_module("plugins.compat")
            assert fresh.AIRFLOW_VERSION == "3.1.0rc1"
            assert fresh.AIRFLOW_V_3_1_PLUS is True and fresh.AIRFLOW_V_3_0_PLUS is True
        finally:
            sys.modules["plugins.compat"] = compat


CLASSES = {
    "DAG": None,
    "BaseOperator": None,
    "BaseSensorOperator": "BaseOperator",
    "BaseHook": None,
    "BaseTrigger": None,
    "BaseEventTrigger": "BaseTrigger",
    "TriggerEvent": None,
    "Param": None,
    "Context": None,
}
FUNCTIONS = ["dag", "get_current_context", "get_parsing_context", "default_deferrable", "readable_dag_ids"]
EXCEPTIONS = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
]


class TestExports:
    def test_all_lists_exactly_the_public_names(self):
        expected = {"AIRFLOW_VERSION", "AIRFLOW_V_3_0_PLUS", "AIRFLOW_V_3_1_PLUS", "TriggerRule", "conf"}
        expected |= set(CLASSES) | set(FUNCTIONS) | set(EXCEPTIONS) | {"task"}
        assert set(compat.__all__) == expected
        assert len(compat.__all__) == len(expected), "duplicates in __all__"

    @pytest.mark.parametrize("name", sorted(compat.__dict__["__all__"]))
    def test_every_exported_name_imports(self, name):
        namespace: dict = {}
        exec(f"from plugins.compat import {name}", namespace)
        assert namespace[name] is getattr(compat, name)

    def test_star_import_gives_all(self):
        namespace: dict = {}
        exec("from plugins.compat import *", namespace)
        assert set(compat.__all__) <= set(namespace)

    @pytest.mark.parametrize("name", sorted(CLASSES))
    def test_classes(self, name):
        obj = getattr(compat, name)
        assert inspect.isclass(obj), name
        if base := CLASSES[name]:
            assert issubclass(obj, getattr(compat, base))

    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_functions(self, name):
        assert inspect.isfunction(getattr(compat, name)), name

    def test_task_is_the_decorator_collection(self):
        assert callable(compat.task)
        assert all(callable(getattr(compat.task, kind)) for kind in ("python", "branch"))

    @pytest.mark.parametrize("name", EXCEPTIONS)
    def test_exceptions(self, name):
        exc = getattr(compat, name)
        assert issubclass(exc, Exception) and issubclass(exc, compat.AirflowException)
        with pytest.raises(compat.AirflowException, match="boom"):
            raise exc("boom")

    def test_not_found_is_what_a_missing_connection_raises(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_COMPAT_MISSING", raising=False)
        with pytest.raises(compat.AirflowNotFoundException, match="compat_missing"):
            compat.BaseHook.get_connection("compat_missing")

    def test_sdk_names_come_from_the_task_sdk(self):
        import airflow.sdk as sdk

        for name in ("DAG", "BaseOperator", "BaseSensorOperator", "Param", "dag", "task", "BaseHook"):
            assert getattr(compat, name) is getattr(sdk, name), name

    def test_trigger_rule_is_a_string_enum(self):
        assert issubclass(compat.TriggerRule, enum.Enum) and issubclass(compat.TriggerRule, str)
        assert compat.TriggerRule.ALL_DONE == "all_done"
        assert (
            compat.TriggerRule("none_failed_min_one_success")
            is compat.TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
        )

    def test_trigger_event_carries_its_payload(self):
        event = compat.TriggerEvent({"status": "success", "message": "ok"})
        assert event.payload == {"status": "success", "message": "ok"}

    def test_conf_reads_configuration(self):
        assert callable(compat.conf.getboolean) and callable(compat.conf.get)
        assert compat.conf.get("core", "dags_folder").endswith("dags")


class TestDefaultDeferrable:
    ENV = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("true", True), ("True", True), ("1", True), ("false", False), ("False", False), ("0", False)],
        ids=["true", "True", "one", "false", "False", "zero"],
    )
    def test_reads_the_env_override(self, monkeypatch, value, expected):
        monkeypatch.setenv(self.ENV, value)
        assert compat.default_deferrable() is expected

    def test_is_read_on_each_call_not_at_import(self, monkeypatch):
        monkeypatch.setenv(self.ENV, "true")
        assert compat.default_deferrable() is True
        monkeypatch.setenv(self.ENV, "false")
        assert compat.default_deferrable() is False

    def test_unset_gives_false(self, monkeypatch):
        monkeypatch.delenv(self.ENV, raising=False)
        assert compat.default_deferrable() is False

    def test_invalid_value_names_section_and_key(self, monkeypatch):
        monkeypatch.setenv(self.ENV, "maybe")
        with pytest.raises(Exception, match=r'"default_deferrable" key in "operators" section.*"maybe"'):
            compat.default_deferrable()
