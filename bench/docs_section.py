"""Results go into docs/ between <!-- NAME:start --> and <!-- NAME:end --> markers, rewritten by
the script that measured them (each bench script's --write)."""
from __future__ import annotations

from pathlib import Path


def write_section(doc: Path, name: str, text: str) -> None:
    """Replaces what stands between the `name` markers in `doc` with `text`."""
    content = doc.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    s, e = content.index(start), content.index(end)
    doc.write_text(content[:s] + start + "\n" + text + "\n" + content[e:])
