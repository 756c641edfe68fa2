"""Emulation of network OS configurations on plain Linux namespaces (no vendor image needed)."""
