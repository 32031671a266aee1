"""Pure data: frozen dataclasses and enums, no I/O."""
