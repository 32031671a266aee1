"""ops: unattended operation: schedules, retention, off-site copies, status, metrics, notifications."""
