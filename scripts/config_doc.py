"""Writes docs/configuration.md from app.config.Settings, so the settings page cannot drift from the code.

`make config-doc` rewrites the page; `--check` exits 1 when the page on disk differs from what Settings says.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic.fields import FieldInfo  # noqa: E402  # after the path: app is imported from this checkout
from pydantic_core import PydanticUndefined  # noqa: E402

from app.config import Settings  # noqa: E402

PAGE = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration

Every setting of the service: read once at start-up from environment variables (one pydantic `Settings` in
`app/config.py`), then passed down. A bad value stops the start with one line naming the variable.

This page is generated from `Settings` by `make config-doc` (`scripts/config_doc.py`); a test fails when it
differs from the code, so edit the field's `description` in `app/config.py`, not this page.

| Variable | Default | Meaning |
|---|---|---|
"""


def variable(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return (prefix + name).upper()


def shown_default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, datetime):
        return f"`{value.isoformat().replace('+00:00', 'Z')}`"
    if isinstance(value, (tuple, list, frozenset, set)):
        return "empty" if not value else f"`{json.dumps(sorted(map(str, value)))}`"
    return f"`{value}`"


def meaning(field: FieldInfo) -> str:
    text = field.description or ""
    choices = _choices(field.annotation)
    if choices and not all(f"{c}" in text for c in choices):
        text = f"One of {', '.join(f'`{c}`' for c in choices)}. {text}".strip()
    return text.replace("|", "\\|").replace("\n", " ")


def _choices(annotation: Any) -> tuple[str, ...]:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is not None and str(annotation).startswith("typing.Literal"):
        return tuple(str(a) for a in args)
    return ()


def render() -> str:
    rows = [
        f"| `{variable(name, field)}` | {shown_default(field)} | {meaning(field)} |"
        for name, field in Settings.model_fields.items()
    ]
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from Settings")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE.relative_to(ROOT)} differs from app/config.py: run `make config-doc`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(Settings.model_fields)} settings)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
