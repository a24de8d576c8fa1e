"""The gRPC front end: ``pullgate serve`` (``pullgate.v1.Verifier``, health, reflection, metrics).

Thin by design (docs/architecture.md §3.1, §3.5): proto ⇄ domain conversion in
:mod:`.convert`, the servicer in :mod:`.servicer`, the one Reason → gRPC code table in
:mod:`.status`, and the composition root in :mod:`.app`. No verification logic lives here.
"""
