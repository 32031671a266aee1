"""runbooks: recovery scenarios as ordered, journaled, resumable steps."""
