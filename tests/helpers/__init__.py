"""Shared test helpers (not fixtures): free ports, a switchable TCP relay, running linkpronto in-process."""
