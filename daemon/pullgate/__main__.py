"""``python -m pullgate`` runs the CLI."""

from pullgate.cli.main import main

raise SystemExit(main())
