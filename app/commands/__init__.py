"""The subcommands of `python -m app`: serve, hash-key, simulate, report, export. Each registers its own parser."""
