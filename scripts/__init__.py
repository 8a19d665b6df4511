"""Project scripts (demo, MWAA bundle); run as ``python -m scripts.<name>`` from the project root."""
