"""drills: recoveries rehearsed on an isolated copy of the stack, failures injected for real,
RTO and RPO measured against the targets."""
