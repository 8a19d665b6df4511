"""Airflow sensors of the carrier optimization package."""
