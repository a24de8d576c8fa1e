"""``python -m pullgate.shim``: the same entry point as ``pullgate-containerd-verifier``."""

from pullgate.shim import main

raise SystemExit(main())
