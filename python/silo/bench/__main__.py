"""`python -m silo.bench SCENARIO ...`: the same as `silo bench SCENARIO ...`."""

from __future__ import annotations

import argparse

from silo.bench import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="silo bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
