"""docs/configuration.md is generated from Settings: a setting added, removed or redescribed without
`make config-doc` fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def test_the_configuration_page_is_what_settings_says() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/config_doc.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_every_setting_has_a_row_with_a_meaning() -> None:
    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    assert len(rows) == len(Settings.model_fields)
    assert [row for row in rows if row.rstrip().endswith("|  |")] == []  # no setting without a description
