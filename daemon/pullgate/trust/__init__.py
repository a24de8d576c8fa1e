"""Hot reload: validated configuration snapshots, atomic swap, directory watching.

See :mod:`pullgate.trust.snapshot` (what a snapshot holds), :mod:`pullgate.trust.state`
(last-good swap, status) and :mod:`pullgate.trust.watcher` (watchdog, debounce).
"""
