"""Project library root: shipped inside the DAGs folder on MWAA, as ``include/`` on Astro."""
