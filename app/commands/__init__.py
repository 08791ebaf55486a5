"""Subcommands beyond `serve`: simulate, report, export. Each module registers its own parser."""
