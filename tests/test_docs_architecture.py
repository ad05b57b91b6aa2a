"""docs/architecture.md shows the batch contract as the code defines it."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.data.batch import contract_table

ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"


def test_contract_table_matches_the_code():
    text = ARCHITECTURE.read_text()
    shown = re.search(r"<!-- contract-table:start -->\n(.*?)\n<!-- contract-table:end -->", text, re.S)
    assert shown, "docs/architecture.md lost its contract-table markers"
    assert shown.group(1) == contract_table(), (
        "run: python -c 'from zoo.data.batch import contract_table as t; print(t())'"
    )
