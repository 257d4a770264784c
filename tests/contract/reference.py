"""Rebilly's contract, as the tests read it: a copy of the schemas they check against, taken
from shared/reference/rebilly-openapi (components/schemas/, same names and layout, so their
$refs resolve), kept in the repository so a clean clone tests against it without the folder."""

from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).parent / "rebilly" / "components" / "schemas"


@cache
def schema(file_name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SCHEMAS / file_name).read_text())
    return loaded


def properties(file_name: str) -> frozenset[str]:
    """The property names a resource's schema lists."""
    return frozenset(schema(file_name)["properties"])
