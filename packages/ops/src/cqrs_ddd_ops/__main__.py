"""``python -m cqrs_ddd_ops``: the ``cqrs-ddd`` command line."""

from cqrs_ddd_ops.cli import main

main()
