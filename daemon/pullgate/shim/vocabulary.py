"""The shim's vocabulary: its bounds and defaults, exit codes, reasons, errors and value objects.

Shared by :mod:`pullgate.shim.invocation` (argv and stdin) and :mod:`pullgate.shim.daemon_call`
(the ``Verify`` call). Like the rest of :mod:`pullgate.shim`, it imports nothing: no ``enum``, no
``dataclasses``, no :mod:`pullgate.errors` (start-up cost, see the package docstring).
"""

# No ``from __future__ import annotations``: importing ``__future__`` costs start-up time, and
# every annotation here is evaluable at definition time (Python >= 3.11).

DEFAULT_SOCKET = "/run/pullgate/pullgate.sock"
DEFAULT_TIMEOUT = 5.0
DESCRIPTOR_MEDIA_TYPE = "application/vnd.oci.descriptor.v1+json"
CALLER = "containerd-verifier"
METHOD_PATH = "/pullgate.v1.Verifier/Verify"
MAX_STDOUT = 32 * 1024 - 1  # containerd reads at most 32768 bytes
MAX_STDIN = 64 * 1024
STDIN_WAIT = 1.0  # containerd writes the descriptor immediately; never wait longer than this
MAX_FIELD = 8 * 1024  # bound on -name / -digest
MAX_RESPONSE = 1024 * 1024


class ExitCode:
    """Exit statuses; containerd treats every non-zero status as a rejection.

    Plain ``int`` constants, not an ``IntEnum``: ``enum`` costs a quarter of the interpreter's
    start-up (see the package docstring).
    """

    ALLOW = 0
    DENY = 1  # the daemon decided: deny
    USAGE = 2  # bad argv or stdin
    UNAVAILABLE = 3  # daemon absent, slow, or broken


class ShimReason:
    """The reasons the shim itself reports: each is a :class:`pullgate.errors.Reason` value.

    Strings, not the ``Reason`` enum, so the shim need not import ``enum``. Unit tests hold every
    one to be a ``Reason`` value, and hold :class:`DaemonUnavailable` (exit ``UNAVAILABLE``) to the
    reasons the reason table (:data:`pullgate.errors.REASONS`) calls inconclusive and every other
    :class:`ShimError` to definitive ones.
    """

    VERIFIED = "VERIFIED"
    MALFORMED = "MALFORMED"
    DESCRIPTOR_MISMATCH = "DESCRIPTOR_MISMATCH"
    INTERNAL = "INTERNAL"
    TIMEOUT = "TIMEOUT"
    DAEMON_UNAVAILABLE = "DAEMON_UNAVAILABLE"


class ShimError(Exception):
    """A definitive rejection found by the shim itself (bad argv, bad stdin, another digest).

    Args:
        reason: A :class:`ShimReason` constant (a ``pullgate.errors.Reason`` value).
        detail: Human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        """Hold the reason and the detail."""
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class DaemonUnavailable(ShimError):
    """The daemon could not answer: absent, slow, or speaking nonsense (retryable)."""


class ShimArgs:
    """The parsed command line.

    A plain slotted class rather than a dataclass: ``dataclasses`` imports ``inspect``, which
    alone costs more than half of the interpreter's start-up (see the package docstring).
    """

    __slots__ = ("digest", "name", "socket", "stdin_media_type", "timeout")

    def __init__(
        self,
        *,
        name: str,
        digest: str,
        stdin_media_type: str = DESCRIPTOR_MEDIA_TYPE,
        socket: str = DEFAULT_SOCKET,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Hold one invocation's flags."""
        self.name = name
        self.digest = digest
        self.stdin_media_type = stdin_media_type
        self.socket = socket
        self.timeout = timeout


class Verdict:
    """The fields of ``VerifyResponse`` the shim acts on (slotted for the same reason)."""

    __slots__ = ("allowed", "digest", "message", "reason")

    def __init__(self, *, allowed: bool, reason: str, message: str, digest: str) -> None:
        """Hold one response."""
        self.allowed = allowed
        self.reason = reason
        self.message = message
        self.digest = digest
