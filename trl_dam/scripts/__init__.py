"""Command-line entry points (`trl-dam`)."""
