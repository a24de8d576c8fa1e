"""Fuzz targets for everything pullgate reads from a registry (see ``fuzz/README.md``).

Each target takes one ``bytes`` input, feeds it to a public parse entry point of
:mod:`pullgate` and checks its invariants: only :class:`pullgate.errors.PullgateError` may
escape, and nothing a registry sends can turn into an allow. The same targets run under atheris
(``make fuzz``) and under hypothesis (``tests/unit/registry/test_response_fuzz.py``).
"""
