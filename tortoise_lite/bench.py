"""Benchmarks: ``python -m tortoise_lite.bench NAME [options]``.

Each benchmark is a module ``tortoise_lite.benchmarks.NAME`` exposing ``main(argv: list[str]) -> int``.
Figures are printed (and written as JSON/PNG where the benchmark says so); they are never asserted.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tortoise_lite.benchmarks as _benchmarks


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(_benchmarks.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m tortoise_lite.bench {" + ",".join(names) + "} [options]")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"error: unknown benchmark {name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"tortoise_lite.benchmarks.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
