"""The trigger rules: may a backfilled event start a campaign, and when?

One pure function, :func:`decide`. For a triggering import and an event at
time ``t`` processed at ``now``, with campaigns keyed by trigger event name:

1. ``t`` later than ``now`` (+ clock skew): recorded, never triggers (Vero:
   "It is not possible to trigger for a future date and time").
2. ``now - t`` above the trigger window (default 72 h, Customer.io; ``None`` =
   no window, Vero): recorded, not triggered.
3. Otherwise, per campaign with delay ``D``: ``D == 0`` sends now; ``t + D >
   now`` schedules at ``t + D``; ``t + D <= now`` is discarded (Vero: "will be
   discarded immediately").

A missing time means "now", so it always triggers (Customer.io).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

from worker.cells import nfc

# Per-event outcomes, and per-campaign actions; these are also the report's counter names.
PASSIVE: Final = "passive"
FUTURE: Final = "future"
OUTSIDE_WINDOW: Final = "outside_window"
NO_CAMPAIGN: Final = "no_campaign"
CAMPAIGNS: Final = "campaigns"
SENT_NOW: Final = "sent_now"
SCHEDULED: Final = "scheduled"
DISCARDED: Final = "discarded"
OUTCOMES = (PASSIVE, FUTURE, OUTSIDE_WINDOW, NO_CAMPAIGN, SENT_NOW, SCHEDULED, DISCARDED)


@dataclasses.dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign triggered by an event name, ``delay_s`` after the event."""

    name: str
    event: str
    delay_s: int
    #: "exact": the event's name must be ``event`` as written; "loose": case, spaces and
    #: underscores aside (``completes_checkout`` triggers ``Completes checkout``)
    match: str = "exact"

    def __post_init__(self) -> None:
        # Names are compared composed (NFC), as events' names are read: a campaign on "Café" typed
        # on a Mac (decomposed) is triggered by "Café" from any file, and is the same campaign.
        object.__setattr__(self, "name", nfc(self.name))
        object.__setattr__(self, "event", nfc(self.event))


class Action(NamedTuple):
    """What happens for one campaign (a named tuple: made for every event that triggers, where a frozen
    dataclass cost ~0.15 us more each)."""

    campaign: str
    kind: Literal["sent_now", "scheduled", "discarded", "outside_window", "future"]
    #: when the message is due (Unix seconds); None for discarded
    at: float | None


class Decision(NamedTuple):
    """The rules' verdict for one event."""

    outcome: str
    actions: tuple[Action, ...] = ()


_PASSIVE = Decision(PASSIVE)
_FUTURE = Decision(FUTURE)
_OUTSIDE = Decision(OUTSIDE_WINDOW)
_NONE = Decision(NO_CAMPAIGN)


def decide(
    *,
    trigger: bool,
    event_time: float | None,
    now: float,
    campaigns: Sequence[Campaign],
    window_s: float | None,
    clock_skew_s: float = 0.0,
) -> Decision:
    """Apply the trigger rules to one event; ``campaigns`` are those on its name."""
    if not trigger:
        return _PASSIVE
    t = now if event_time is None else event_time
    if t > now + clock_skew_s:
        return _FUTURE
    if window_s is not None and now - t > window_s:
        return _OUTSIDE
    if not campaigns:
        return _NONE
    actions = []
    for campaign in campaigns:
        if campaign.delay_s == 0:
            actions.append(Action(campaign.name, SENT_NOW, now))
        elif t + campaign.delay_s > now:
            actions.append(Action(campaign.name, SCHEDULED, t + campaign.delay_s))
        else:
            actions.append(Action(campaign.name, DISCARDED, None))
    return Decision(CAMPAIGNS, tuple(actions))


MATCHES = ("exact", "loose")


def loose_name(name: str) -> str:
    """An event name with case, spaces, underscores and hyphens set aside."""
    return "".join(name.lower().replace("_", " ").replace("-", " ").split())


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignIndex:
    """Campaigns by the event names that trigger them."""

    exact: dict[str, list[Campaign]] = dataclasses.field(default_factory=dict)
    loose: dict[str, list[Campaign]] = dataclasses.field(default_factory=dict)

    def match(self, name: str) -> tuple[list[Campaign], list[Campaign]]:
        """(every campaign ``name`` triggers, those of them it matches only loosely)."""
        found = self.exact.get(name, [])
        if not self.loose:
            return found, []
        loosely = [c for c in self.loose.get(loose_name(name), ()) if c.event != name]
        return (found + loosely, loosely) if loosely else (found, [])


NO_CAMPAIGNS = CampaignIndex()


def by_event(campaigns: Sequence[Campaign]) -> CampaignIndex:
    """Index campaigns by their trigger event name (loose ones also by :func:`loose_name`)."""
    index = CampaignIndex()
    for campaign in campaigns:
        index.exact.setdefault(campaign.event, []).append(campaign)
        if campaign.match == "loose":
            index.loose.setdefault(loose_name(campaign.event), []).append(campaign)
    return index
