"""YAML loading that remembers where every value came from.

``load_documents(path)`` returns one :class:`Document` per YAML document in the
file. Each document keeps a map from a field path such as
``("steps", 0, "expected", "y")`` to its line number, so errors can point at
the exact line. Two conveniences over plain PyYAML, both to avoid silently
wrong values:

* duplicate keys in a mapping are an error (PyYAML keeps the last one);
* plain scalars such as ``1e-3`` (YAML 1.1 reads them as text) are numbers,
  and so are ``nan``, ``inf`` and ``-inf``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CaseError

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_SPECIAL = {"nan": float("nan"), "inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf")}
_constructor = yaml.constructor.SafeConstructor()
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same nodes, ~10x faster

Path_ = tuple


@dataclass
class Document:
    """One YAML document: its data and the line of every field."""

    file: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: tuple, message: str) -> CaseError:
        return CaseError(self.file, self.line(path), format_path(path), message)


def format_path(path: tuple) -> str:
    """``("steps", 0, "expected")`` → ``steps[0].expected``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _scalar(node: yaml.ScalarNode) -> Any:
    if not node.style and node.tag == "tag:yaml.org,2002:str":  # plain (unquoted): None or "" by loader
        text = node.value.strip()
        if text.lower() in _SPECIAL:
            return _SPECIAL[text.lower()]
        if _FLOAT.match(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
    return _constructor.construct_object(node, deep=True)


def _convert(node: yaml.Node, path: tuple, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, path + (i,), doc) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)):
                raise CaseError(doc.file, key_node.start_mark.line + 1, format_path(path), "mapping keys must be plain words")
            if key in out:
                raise CaseError(doc.file, key_node.start_mark.line + 1, format_path(path + (key,)), "duplicate key")
            out[key] = _convert(value_node, path + (key,), doc)
            doc.lines[path + (key,)] = key_node.start_mark.line + 1  # a block value starts below its key
        return out
    raise CaseError(doc.file, node.start_mark.line + 1, format_path(path), f"unsupported YAML node {node.tag}")


def load_documents(path: str | Path) -> list[Document]:
    """Parse every YAML document in ``path``; a syntax error is a CaseError."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseError(file, None, "", f"cannot read file: {exc.strerror or exc}") from None
    return parse_documents(text, file)


def parse_documents(text: str, file: str = "<string>") -> list[Document]:
    """Like :func:`load_documents`, for text already in memory (``file`` names it)."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise CaseError(file, line, "", f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        raise CaseError(file, None, "", f"YAML error: {exc}") from None
    docs = []
    for node in nodes:
        if node is None:
            continue
        doc = Document(file=file, data=None)
        doc.data = _convert(node, (), doc)
        docs.append(doc)
    return docs
