"""The `psmon` command line."""
