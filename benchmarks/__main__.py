"""Entry point of ``python -m benchmarks``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
