"""Device sync: carrier API clients and simulator, staging, merge into Device."""
