"""The runtime gate's HTTP/2 frame-splicing transport (:mod:`.conn`): a pass-through call
costs about what a byte relay costs, while decided calls are held for the gate's verdict."""
