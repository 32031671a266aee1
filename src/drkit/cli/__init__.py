"""Typer app: parses, wires, renders. No logic of its own."""
