"""reports: what a report says, computed from a journal and the journals before it.

The engine returns a `ReportModel` (frozen data); `drkit report` renders it as HTML,
Markdown or JSON in cli/report_render/, and `drkit drills list` tabulates `RunSummary`s."""
