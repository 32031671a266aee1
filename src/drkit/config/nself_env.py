"""How nself (nself-org/cli v0.9.x) picks its environment and merges its .env files.

- The environment (src/lib/utils/env-detection.sh, `detect_environment`): `TARGET_ENV`
  (a command-line flag), then `NSELF_ENV` from the shell, then the `ENV=` line of `.env`
  (read from the file, not from the shell), then `ENV` from the shell, else `dev`;
  development/develop/devel -> dev, production -> prod, stage -> staging.
- The files (`get_env_file_cascade`), later ones winning: `.env.dev`; then `.env.local`
  in dev only; `.env.staging` in staging; `.env.staging`, `.env.prod`, `.env.secrets` in
  prod; `.env` last. `cascade_env_vars` then exports `ENV` as the chosen environment, which is
  what the compose generator compares (`POSTGRES_EXPOSE_PORT=auto` publishes only in dev).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from drkit.config.secrets import parse_env_text
from drkit.domain.errors import UsageError

_ALIASES = {
    "development": "dev",
    "develop": "dev",
    "devel": "dev",
    "dev": "dev",
    "production": "prod",
    "prod": "prod",
    "staging": "staging",
    "stage": "staging",
}


@dataclass(frozen=True)
class EnvChoice:
    """The environment nself would use, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class ProjectEnv:
    """An nself project's merged settings, the files they came from, and the environment."""

    values: dict[str, str]
    files: tuple[Path, ...]
    choice: EnvChoice

    def defined_in(self, key: str) -> Path | None:
        """The file whose value of `key` wins (the last one defining it), if any."""
        found = None
        for path in self.files:
            if key in parse_env_text(path.read_text()):
                found = path
        return found


def normalise_env(value: str) -> str:
    value = value.strip()
    return _ALIASES.get(value, value)


def choose_environment(project_dir: Path, shell: Mapping[str, str]) -> EnvChoice:
    """TARGET_ENV, then NSELF_ENV from the shell, then ENV in .env, then ENV from the shell."""
    for key in ("TARGET_ENV", "NSELF_ENV"):
        if shell.get(key, "").strip():
            return EnvChoice(normalise_env(shell[key]), f"{key}={shell[key].strip()} in the shell")
    dot_env = project_dir / ".env"
    if dot_env.is_file():
        in_file = parse_env_text(dot_env.read_text()).get("ENV", "").strip()
        if in_file:
            return EnvChoice(normalise_env(in_file), f"ENV={in_file} in .env")
    if shell.get("ENV", "").strip():
        return EnvChoice(
            normalise_env(shell["ENV"]), f"ENV={shell['ENV'].strip()} in the shell (none in .env)"
        )
    return EnvChoice("dev", "no TARGET_ENV/NSELF_ENV in the shell and no ENV= in .env: nself's default")


def cascade(project_dir: Path, env: str) -> list[Path]:
    """The .env files nself loads for environment `env`, in loading order (those that exist)."""
    names = [".env.dev"]
    if env == "dev":
        names.append(".env.local")
    elif env == "staging":
        names.append(".env.staging")
    elif env == "prod":
        names += [".env.staging", ".env.prod", ".env.secrets"]
    names.append(".env")
    return [project_dir / n for n in names if (project_dir / n).is_file()]


def read_project_env(project_dir: Path, shell: Mapping[str, str] | None = None) -> ProjectEnv:
    """The merged settings of an nself project as nself would load them."""
    if not project_dir.is_dir():
        raise UsageError(f"{project_dir}: not a directory")
    choice = choose_environment(project_dir, os.environ if shell is None else shell)
    files = cascade(project_dir, choice.name)
    if not files:
        raise UsageError(f"{project_dir}: no .env or .env.dev here; is it an nself project?")
    merged: dict[str, str] = {}
    for path in files:
        merged.update(parse_env_text(path.read_text()))
    merged["ENV"] = choice.name  # cascade_env_vars exports the chosen environment as ENV
    return ProjectEnv(merged, tuple(files), choice)
