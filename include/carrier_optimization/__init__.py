"""Carrier rate plan optimization library: domain, cost model, engines, storage (no Airflow)."""
