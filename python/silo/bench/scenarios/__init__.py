"""One module per `silo bench` scenario, each with `run(bench: Bench) -> None`."""
