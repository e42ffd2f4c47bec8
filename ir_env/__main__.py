"""``python -m ir_env`` runs the spatial-ir command line."""

from ir_env.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
