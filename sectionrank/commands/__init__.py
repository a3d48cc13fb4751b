"""Subcommands of the `sectionrank` CLI, one module per task; `sectionrank.cli` registers them."""
