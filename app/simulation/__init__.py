"""A seeded generator of realistic user-action events with known, planted patterns.

Pure: no I/O, no clock, no global random state. The same `SimulationParams` give the same events, byte
for byte, on every machine, so tests can plant a fact (peak hour, funnel conversion, retention...) and
check that the analysis package finds it again.

The model, in the order the generator applies it:

* Users sign up at times drawn from the traffic density over the whole window (one `signup` each).
  Each has a primary source (web, ios, android...) and a Pareto-distributed activity weight, so a few
  power users produce a large share of the events (`activity_alpha`, capped at `activity_cap`).
* A user stays alive for a geometric number of calendar weeks (Monday 00:00 UTC): alive in week k after
  the signup week with probability `weekly_retention` ** k, then gone for good. Every alive week holds
  at least one visit, so week-k cohort retention measures `weekly_retention` ** k.
* Funnel: after `signup`, a user does `activate` in the same session with probability `activation_rate`,
  an exponential delay (mean `activation_delay_mean_seconds`) later;
  an activated user makes a first `purchase` in a later session (or the signup session when there is
  none) with probability `purchase_rate`, and then buys again in a later session with probability
  `repeat_purchase_rate`.
* The rest of the event budget goes into sessions of geometric length (mean `mean_session_events`,
  gaps exponential with mean `mean_event_gap_seconds`) spread over users in proportion to activity
  weight times alive time. Their actions come from the source's own mix.
* Win-back (`resurrection_rate`, 0 by default): a user gone for good with two weeks or more of the window
  left comes back for one visit (metadata campaign "winback") after at least one silent week.
* Traffic density over time is day weight x hour weight: a daily cycle peaking at `peak_hour` UTC
  (`daily_amplitude`), a weekly cycle (`weekday_weights`), and one anomalous day (`spike_position`,
  `spike_factor`).
* Delivery: received_at = timestamp + a short latency; a fraction `late_fraction` arrives hours late
  (offline clients). Mobile sources set sent_at; web leaves it null. A fraction
  `retry_duplicate_fraction` is re-sent by a retrying client with a fresh event_id and the same content.
* Metadata keys depend on the action: page, referrer (null in `null_referrer_fraction`), plan (drawn from
  `plan_mix`), amount (log-normal, median `purchase_amount_median` x the rate of its currency, drawn from
  `currency_mix`), device, session_id...

Events come out ordered by session start, roughly the order a live stream would deliver them.
"""

from app.simulation.generator import BLOCK_SESSIONS, in_batches, simulate
from app.simulation.params import ENGAGEMENT_ACTIONS, FUNNEL_ACTIONS, SimulationParams, SourceProfile

__all__ = [
    "BLOCK_SESSIONS",
    "ENGAGEMENT_ACTIONS",
    "FUNNEL_ACTIONS",
    "SimulationParams",
    "SourceProfile",
    "in_batches",
    "simulate",
]
