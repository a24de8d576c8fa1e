"""Are pullgate's own sockets being served: the ``pullgate.v1`` API and the CRI ImageService?"""

from __future__ import annotations

import stat

from pullgate.doctor.findings import Code, DoctorPaths, Finding, Severity


def socket_checks(paths: DoctorPaths) -> list[Finding]:
    """A finding for each of pullgate's sockets that does not exist (or is not a socket)."""
    out: list[Finding] = []
    for path, code, what in (
        (paths.api_socket, Code.API_SOCKET_MISSING, "pullgate.v1 API (used by the verifier shim)"),
        (paths.cri_socket, Code.CRI_SOCKET_MISSING, "CRI ImageService (used by the kubelet)"),
    ):
        try:
            ok = stat.S_ISSOCK(path.stat().st_mode)
        except OSError:
            ok = False
        if not ok:
            out.append(
                Finding(
                    severity=Severity.ERROR,
                    code=code,
                    message=f"no socket at {path}: the {what} is not being served",
                    file=path,
                    fix="systemctl start pullgate   # and check 'journalctl -u pullgate'",
                )
            )
    return out
