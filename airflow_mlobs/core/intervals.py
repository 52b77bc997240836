"""Confidence intervals of proportions, defined once for every check that reports a rate.

Pure and light: plain ``math``, no numpy or scipy, so a spec that a DAG imports at parse time can
use it. Service health reports the error rate with :func:`wilson_interval`; the fairness check
reports each group's rates with it.
"""

from __future__ import annotations

import math

#: The two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``.
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion ``successes / trials``.

    ``centre = (p + z^2 / 2n) / (1 + z^2 / n)``, ``half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n +
    z^2 / 4n^2)``; ``(centre - half, centre + half)`` clipped to [0, 1]. Unlike the normal
    interval it stays inside [0, 1] and is not zero-width at 0 or n successes. ``None`` for
    ``trials == 0``. Equals ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    if trials <= 0:
        return None
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
