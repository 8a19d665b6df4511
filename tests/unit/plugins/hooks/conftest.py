"""Shared fixtures of the hook tests: capture what a hook logs."""

from __future__ import annotations

import logging

import pytest
import structlog

from plugins.compat import BaseHook


@pytest.fixture
def hook_logs():
    """Events the hook logs at any level (Airflow's structlog set-up filters INFO out by default)."""
    try:
        BaseHook.get_connection("warm_up_airflow_logging")  # Airflow configures structlog on first use
    except Exception:
        pass
    saved = structlog.get_config()
    try:
        with structlog.testing.capture_logs() as logs:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
            yield logs
    finally:
        structlog.configure(**saved)
