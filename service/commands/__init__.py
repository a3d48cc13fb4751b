"""Subcommands of the `sectionrank` CLI, one module per task; `service.cli` registers them."""
