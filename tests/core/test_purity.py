"""trm_core stays pure: no web, queue or metrics library, and it never imports app/ or training/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings", "redis",
             "prometheus_client", "httpx", "requests", "mcp", "app", "training"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_trm_core_imports_only_pure_libraries() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN)
                 for p in (ROOT / "trm_core").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
