"""Airflow triggers of the carrier optimization package."""
