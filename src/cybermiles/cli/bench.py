"""`cmt bench ...`: in-process performance benchmarks."""

import click


@click.group("bench")
def bench_group() -> None:
    """Benchmarks (figures depend on the machine; run on an idle one)."""
