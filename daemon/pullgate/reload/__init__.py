"""Hot reload: validated configuration snapshots, atomic swap, directory watching.

See :mod:`pullgate.reload.snapshot` (what a snapshot holds), :mod:`pullgate.reload.state`
(last-good swap, status) and :mod:`pullgate.reload.watcher` (watchdog, debounce).
"""
