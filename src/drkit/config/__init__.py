"""stack.yaml: YAML -> strict pydantic models -> frozen domain objects."""

from drkit.config.loader import load_stack

__all__ = ["load_stack"]
