"""Airflow adapters of the carrier optimization package: hooks, operators, sensors, triggers."""
