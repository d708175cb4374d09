"""``python -m hindsight``: the ``hindsight`` command."""

from hindsight.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
