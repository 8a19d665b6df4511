"""Configuration: tenants.yaml and the explicit local mode."""
