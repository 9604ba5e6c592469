"""CPU steal: the share of the machine's CPU time its hypervisor gave to other guests.

On a shared virtual machine a benchmark's figures mean little while steal is high: the same
code measured 78 and 356 reports/s minutes apart, with 7-16 CPU-seconds of 24 stolen in the
slow runs. Every figure the benchmarks print carries the steal measured during it.
"""

from pathlib import Path

_PROC_STAT = Path("/proc/stat")


def cpu_times() -> tuple[int, int] | None:
    """(all, stolen) CPU ticks since boot over every CPU, from /proc/stat; None where there is none."""
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user)
    ticks = [int(value) for value in fields[1:9]]
    return sum(ticks), ticks[7]


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] == before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


def describe(share: float | None) -> str:
    return "steal n/a" if share is None else f"steal {share:4.0%}"
