"""``make imports``: what every module under ``services/`` and ``shared/`` imports, as a table in
docs/imports.md (read from the source with ``ast``; imports inside functions count too)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path, module: str) -> set[str]:
    out: set[str] = set()
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
    return out


def table() -> str:
    rows = ["| module | of its own service (the wiring: of the services) | shared | other packages |", "|---|---|---|---|"]
    for path in sorted([*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names = imports_of(path, module)
        wiring = module.count(".") <= 1 and module.split(".")[-1] in ("bootstrap", "embedded", "demo", "__main__")
        own_root = "services" if wiring and module.startswith("services") else ".".join(module.split(".")[:2])
        own = sorted(n.removeprefix(own_root + ".") for n in names if n.startswith(own_root + ".") and n != module)
        shared = sorted(n for n in names if n.startswith("shared") and not module.startswith("shared"))
        if module.startswith("shared"):
            own = sorted(n for n in names if n.startswith("shared.") and n != module)
        other = sorted({n.split(".")[0] for n in names if not n.startswith(("services", "shared"))}
                       - set(sys.stdlib_module_names) - {"__future__"})
        rows.append(f"| `{module}` | {', '.join(own) or '-'} | {', '.join(shared) or '-'} | {', '.join(other) or '-'} |")
    return "\n".join(rows)


def main() -> int:
    doc = ROOT / "docs" / "imports.md"
    doc.write_text("# What every module imports\n\nWritten by `make imports` (tests/support/imports.py) from the "
                   "source; `make lint` checks the rules behind it (import-linter, `pyproject.toml`). Services "
                   "import nothing of each other, so each row's imports are its own service's, `shared`'s and "
                   "third-party packages'.\n\n" + table() + "\n", encoding="utf-8")
    print(f"wrote {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
