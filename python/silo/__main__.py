"""`python -m silo ...` runs the `silo` command."""

from silo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
