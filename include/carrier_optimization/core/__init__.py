"""The pure optimization core: domain, cost model, comm groups, validation, fleets, engines (no I/O)."""
