"""Ordered funnel: how many users go through a sequence of actions, each at or after the one before."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from analysis.db import Database

DEFAULT_STEPS = ("signup", "activate", "purchase")


def funnel(db: Database, steps: Sequence[str] = DEFAULT_STEPS) -> pd.DataFrame:
    """Per step: users who reached it in order, conversion from the step before and from the first step.

    A user reaches step i when they did action i at or after the first time they reached step i-1.
    """
    if not steps:
        raise ValueError("a funnel needs at least one step")
    params = {f"step{i}": action for i, action in enumerate(steps)}
    counts = db.frame(db.sql.funnel(len(steps)), params).set_index("step")["users"]
    frame = pd.DataFrame({"action": list(steps), "users": counts.reindex(range(len(steps)), fill_value=0).to_numpy()})
    first = frame["users"].iloc[0]
    previous = frame["users"].shift(1)
    frame["step_conversion"] = (frame["users"] / previous).where(previous > 0)
    frame.loc[0, "step_conversion"] = 1.0 if first else float("nan")
    frame["overall_conversion"] = frame["users"] / first if first else float("nan")
    return frame
