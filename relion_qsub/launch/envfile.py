"""--env-file for --dry-run: a job's environment saved with `env -0` or `env | sort`, read without a shell."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION = re.compile(r"(?:export\s+)?BASH_FUNC_[^=]*=\(\)")
_JOB_ID_LINE = re.compile(r"\s*(?:export\s+)?SLURM_JOB_ID=\S")
SAVE_ENV_HINT = (
    "save the job's environment inside the batch script with `env -0 > job.env`, or only what relion-launch "
    "reads with `env | grep -E '^(SLURM_|CUDA_VISIBLE_DEVICES=|RELION_)' > job.env`"
)


def load_env_file(path: str) -> dict[str, str]:
    """The environment saved in FILE: NUL-separated (``env -0``, exact) or KEY=VALUE lines.

    Lines: ``export``, matching quotes and # comments are allowed, so the output of ``env`` and hand-made files
    work. Exported shell functions (``BASH_FUNC_module%%=() {`` and its body) are skipped wherever ``sort`` put
    their lines: a body line is indented or a lone ``}``, never ``KEY=VALUE`` at the start of a line. Any other
    line that is not ``KEY=VALUE`` is an error naming the line.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --env-file {path}: {exc.strerror}") from exc
    text = data.decode(errors="replace")
    env = _env_records(path, text) if "\0" in text else _env_lines(path, text)
    if not env.get("SLURM_JOB_ID", "").strip():
        for lineno, line in enumerate(text.split("\0" if "\0" in text else "\n"), 1):
            if _JOB_ID_LINE.match(line):
                raise InputError(
                    f"{path}:{lineno}: SLURM_JOB_ID is set on an indented line, which reads as part of an exported "
                    f"shell function, so the plan would be for outside a Slurm job; {SAVE_ENV_HINT}"
                )
    return env


def _env_records(path: str, text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, record in enumerate(text.split("\0"), 1):
        if not record:
            continue
        key, eq, value = record.partition("=")
        if key.startswith("BASH_FUNC_"):
            continue
        if not eq or not _KEY.fullmatch(key):
            raise InputError(f"{path}: NUL-separated record {number} is not KEY=VALUE: {record[:60]!r}")
        env[key] = value
    return env


def _env_lines(path: str, text: str) -> dict[str, str]:
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    functions = any(_FUNCTION.match(line) for line in lines)
    env: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if functions and (line[0].isspace() or stripped == "}"):
            continue  # a body line of an exported shell function (`env` prints them over several lines)
        if stripped.startswith("export "):
            stripped = stripped[7:].lstrip()
        key, eq, value = stripped.partition("=")
        if key.startswith("BASH_FUNC_"):
            continue
        if not eq or not _KEY.fullmatch(key):
            raise InputError(
                f"{path}:{lineno}: expected KEY=VALUE, got {line[:60]!r} (the rest of a multi-line value?); "
                + SAVE_ENV_HINT
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


def env_file_warnings(path: str, env: Mapping[str, str]) -> list[str]:
    """Say so when the file cannot describe a Slurm job: the plan would silently be the local one."""
    if env.get("SLURM_JOB_ID", "").strip():
        return []
    if not any(key.startswith("SLURM_") for key in env):
        return [f"--env-file {path} sets no SLURM_* variable: this is the plan outside a Slurm job; {SAVE_ENV_HINT}"]
    return [
        f"--env-file {path} has SLURM_* variables but no SLURM_JOB_ID: this is the plan outside a Slurm job "
        f"(relion-launch takes SLURM_JOB_ID as the sign of a job); {SAVE_ENV_HINT}"
    ]
