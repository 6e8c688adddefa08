"""``python -m dbt_otel_replay``: the command line where the ``dbt-otel-replay`` script is not on PATH."""

from .cli import PROG, main

if __name__ == "__main__":
    main(prog_name=PROG)
