"""A real local stack on loopback ports, for demos, drills and tests (the same code for all)."""
