"""``python -m pullgate`` runs the CLI."""

from pullgate.cli import main

raise SystemExit(main())
