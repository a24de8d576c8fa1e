"""The samples ``bench/pull.py`` takes, the ratios it derives from them (medians with bootstrap
intervals) and its summary table. Nothing here measures.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 6


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Median of ``values`` and its 95 % bootstrap interval (resampled; fixed seed)."""
    rng = random.Random(BOOTSTRAP_SEED)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_DRAWS)
    )
    low, high = medians[int(0.025 * BOOTSTRAP_DRAWS)], medians[int(0.975 * BOOTSTRAP_DRAWS) - 1]
    return statistics.median(values), low, high


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Series:
    """Samples of the two paths, round by round."""

    proxied: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    upstream: list[float] = field(default_factory=list)  # the proxy's PullImage to containerd
    decisions: list[float] = field(default_factory=list)  # pullgate's decision per proxied pull
    floor: list[float] = field(default_factory=list)  # bare replay of each decision's requests
    # the zero-cost proxy's pulls (cold only): the real proxy and pin, a bare fetch for decision
    zero_cost: list[float] = field(default_factory=list)
    zero_cost_fetch: list[float] = field(default_factory=list)  # its bare fetch, per pull
    zero_cost_upstream: list[float] = field(default_factory=list)  # its PullImage to containerd
    floor_requests: int = 0

    @property
    def same_pull(self) -> list[float]:
        """Per proxied pull: its time ÷ the time of its own PullImage call to containerd."""
        return [a / b for a, b in zip(self.proxied, self.upstream, strict=True)]

    @property
    def paired(self) -> list[float]:
        """Per round: the proxied pull ÷ the round's direct pull (a different pull)."""
        return [a / b for a, b in zip(self.proxied, self.direct, strict=True)]

    @property
    def ratio(self) -> float:
        """The number compared with the target: the median of the paired rounds' ratios."""
        return statistics.median(self.paired)

    @property
    def through_proxy(self) -> float:
        """containerd's pull as the proxy saw it ÷ as the direct client saw it (medians)."""
        return statistics.median(self.upstream) / statistics.median(self.direct)

    def lines(self, name: str) -> list[str]:
        """Both ratios with their intervals, pullgate's added time, containerd's pull both ways."""
        same, same_low, same_high = median_interval(self.same_pull)
        paired, paired_low, paired_high = median_interval(self.paired)
        added = statistics.median(a - b for a, b in zip(self.proxied, self.upstream, strict=True))
        return [
            f"{name}: n={len(self.proxied)} pulls per path",
            f"  same pull: proxied ÷ its own PullImage call to containerd {same:.3f} "
            f"(95% interval {same_low:.3f}-{same_high:.3f}); pullgate added {_ms(added)} "
            f"(median), of which the decision {_ms(statistics.median(self.decisions))}",
            f"  paired rounds: proxied ÷ the round's direct pull {paired:.3f} "
            f"(95% interval {paired_low:.3f}-{paired_high:.3f}); medians: proxied "
            f"{_ms(statistics.median(self.proxied))}, direct {_ms(statistics.median(self.direct))}",
            f"  containerd's PullImage as the proxy saw it {_ms(statistics.median(self.upstream))}"
            f" vs as the direct client saw it {_ms(statistics.median(self.direct))} (medians)",
            *self._floor_lines(),
            *self._zero_cost_lines(),
        ]

    @property
    def floor_ratio(self) -> float:
        """Median ``(containerd's pull + bare replay of the decision's requests) / containerd's
        pull``, within the same pull."""
        return statistics.median(
            (u + f) / u for u, f in zip(self.upstream, self.floor, strict=True)
        )

    @property
    def zero_cost_paired(self) -> list[float]:
        """Per round: the zero-cost proxy's pull ÷ the round's direct pull."""
        return [a / b for a, b in zip(self.zero_cost, self.direct, strict=True)]

    @property
    def zero_cost_ratio(self) -> float:
        """Median over rounds of :attr:`zero_cost_paired`."""
        return statistics.median(self.zero_cost_paired)

    def _floor_lines(self) -> list[str]:
        if not self.floor:
            return []
        return [
            f"  the decision's {self.floor_requests} registry requests replayed bare: "
            f"{_ms(statistics.median(self.floor))} (median); floor ratio {self.floor_ratio:.3f} "
            "(pullgate at zero cost beyond those round trips)",
        ]

    def _zero_cost_lines(self) -> list[str]:
        if not self.zero_cost:
            return []
        ratio, low, high = median_interval(self.zero_cost_paired)
        same, same_low, same_high = median_interval(self.zero_cost_same_pull)
        decision = "an answer from memory"
        if self.zero_cost_fetch:
            fetch = _ms(statistics.median(self.zero_cost_fetch))
            decision = f"a bare client's fetch of the signature, {fetch} median"
        return [
            f"  zero-cost pullgate (the real proxy, forward and pin; for decision {decision}): "
            f"same pull {same:.3f} (95% interval {same_low:.3f}-{same_high:.3f}); "
            f"÷ the round's direct pull {ratio:.3f} (95% interval {low:.3f}-{high:.3f})",
        ]

    @property
    def zero_cost_same_pull(self) -> list[float]:
        """Per zero-cost pull: its time ÷ the time of its own PullImage call to containerd."""
        return [a / b for a, b in zip(self.zero_cost, self.zero_cost_upstream, strict=True)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the summary table."""

    name: str
    ratio: float
    target: float | None

    @property
    def ok(self) -> bool:
        """True when the row meets its target (informational rows always do)."""
        return self.target is None or self.ratio <= self.target

    @property
    def result(self) -> str:
        """What the table prints in the result column."""
        if self.target is None:
            return ""
        return "ok" if self.ok else "MISSED"


def table(rows: Sequence[Row]) -> str:
    lines = [f"{'measurement':<62} {'ratio':>7} {'target':>8}  result", "-" * 92]
    for row in rows:
        target = f"<= {row.target:.2f}" if row.target is not None else "info"
        lines.append(f"{row.name:<62} {row.ratio:7.3f} {target:>8}  {row.result}")
    return "\n".join(lines)


def pull_rows(name: str, series: Series, target: float) -> list[Row]:
    """The compared paired ratio and the same-pull breakdown."""
    return [
        Row(name=f"PullImage proxied / direct, {name}", ratio=series.ratio, target=target),
        Row(
            name="  same pull: proxied / its own call to containerd",
            ratio=statistics.median(series.same_pull),
            target=None,
        ),
        Row(
            name="  containerd's pull via the proxy / direct",
            ratio=series.through_proxy,
            target=None,
        ),
    ]


def zero_cost_rows(series: Series, what: str) -> list[Row]:
    """The zero-cost proxy's paired and same-pull ratios (informational)."""
    return [
        Row(name=f"  zero-cost pullgate: {what}", ratio=series.zero_cost_ratio, target=None),
        Row(
            name="    same pull",
            ratio=statistics.median(series.zero_cost_same_pull),
            target=None,
        ),
    ]
