"""Carrier API clients and the local carrier simulator (no Airflow)."""
