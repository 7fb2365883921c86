"""Reads a Terraform tree into plain Python values, for the offline infrastructure checks.

python-hcl2 returns strings with their quotes and expressions as ``${...}``; this module strips
the quotes and the parser's block markers so the checks can compare plain values, and gives
each folder of ``.tf`` files (one Terraform module) its resources, data sources, variables,
outputs, locals and module calls. Nothing is evaluated: a value that is an expression stays the
expression's text, which is why the design writes its security properties as literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import hcl2

SKIP_DIRS = {".terraform", ".git", "__pycache__"}


def clean(value: Any) -> Any:
    """Strips python-hcl2's quotes and block markers, recursively."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def parse_file(path: Path) -> dict[str, Any]:
    """Parses one .tf file; raises on a syntax error (the message names the line)."""
    with path.open(encoding="utf-8") as f:
        return clean(hcl2.load(f))


@dataclass
class Block:
    """A resource or data source: its type, name, body and the file it is in."""

    type: str
    name: str
    body: dict[str, Any]
    file: Path

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def where(self) -> str:
        return f"{self.file}: {self.address}"


@dataclass
class Module:
    """One folder of .tf files, as Terraform sees it."""

    path: Path
    files: dict[Path, dict[str, Any]] = field(default_factory=dict)
    resources: list[Block] = field(default_factory=list)
    data: list[Block] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    module_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)

    def resources_of(self, rtype: str) -> list[Block]:
        return [r for r in self.resources if r.type == rtype]

    def data_of(self, dtype: str, name: str) -> Block | None:
        return next((d for d in self.data if d.type == dtype and d.name == name), None)


def load_module(path: Path) -> Module:
    """Parses every .tf file directly in ``path``."""
    module = Module(path=path)
    for tf in sorted(path.glob("*.tf")):
        doc = parse_file(tf)
        module.files[tf] = doc
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    module.resources.append(Block(rtype, name, body, tf))
        for entry in doc.get("data", []):
            for dtype, named in entry.items():
                for name, body in named.items():
                    module.data.append(Block(dtype, name, body, tf))
        for entry in doc.get("variable", []):
            module.variables.update(entry)
        for entry in doc.get("output", []):
            module.outputs.update(entry)
        for entry in doc.get("locals", []):
            module.locals.update(entry)
        for entry in doc.get("module", []):
            module.module_calls.update(entry)
        module.terraform.extend(doc.get("terraform", []))
    return module


def tf_files(root: Path) -> Iterator[Path]:
    """Every .tf file under ``root``."""
    for path in sorted(root.rglob("*.tf")):
        if not SKIP_DIRS.intersection(path.parts):
            yield path


def module_dirs(root: Path) -> list[Path]:
    """Every folder under ``root`` that holds .tf files."""
    return sorted({p.parent for p in tf_files(root)})


def load_tree(root: Path) -> dict[Path, Module]:
    """Every module under ``root``, keyed by its folder relative to ``root``."""
    return {d.relative_to(root): load_module(d) for d in module_dirs(root)}


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The nested blocks called ``name`` (python-hcl2 gives a block as a list of bodies)."""
    value = body.get(name, [])
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]


def first(body: dict[str, Any], *path: str) -> Any:
    """Follows nested blocks or object keys; None where the path ends."""
    value: Any = body
    for key in path:
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    return value


REF = re.compile(r"\b(aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)")


def refers_to(value: Any, block: Block) -> bool:
    """Whether an expression (or a list of them) refers to ``block`` by address."""
    if isinstance(value, list):
        return any(refers_to(v, block) for v in value)
    if not isinstance(value, str):
        return False
    return any(m.group(1) == block.type and m.group(2) == block.name for m in REF.finditer(value))


def resolve(module: Module, value: Any) -> Any:
    """Replaces a whole-value ``${local.x}``/``${local.x.y}``/``${var.x}`` reference by the local
    or the variable's default, so literal lists kept in locals can be checked."""
    for _ in range(8):
        if not isinstance(value, str):
            return value
        m = re.fullmatch(r"\$\{(local|var)\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+)*)\}", value)
        if not m:
            return value
        kind, name, rest = m.groups()
        if kind == "local":
            value = module.locals.get(name)
        else:
            value = module.variables.get(name, {}).get("default")
        for key in filter(None, rest.split(".")):
            value = value.get(key) if isinstance(value, dict) else None
    return value


def remove_blocks(text: str, header: str, limit: int | None = None) -> str:
    """Removes the blocks whose header matches the regex ``header``, each up to its closing
    brace (``limit``: at most that many), for tests that edit copies of the tree."""
    removed = 0
    while (limit is None or removed < limit) and (m := re.search(header + r"[^{\n]*\{", text)):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]
        removed += 1
    return text
