"""Airflow hooks of the carrier optimization package."""
