"""Every .tf file under terraform/ parses as HCL."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO
from hcl_tree import parse_file, tf_files

FILES = list(tf_files(REPO / "terraform"))


def test_there_is_terraform_to_check() -> None:
    assert len(FILES) >= 30, f"only {len(FILES)} .tf files under terraform/"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_parses(path: Path) -> None:
    parse_file(path)
