"""Airflow operators of the carrier optimization package."""
