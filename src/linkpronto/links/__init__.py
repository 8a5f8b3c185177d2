"""Consultation links: the store and the operations on links (create, resolve, join, revoke, list)."""
