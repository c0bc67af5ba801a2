"""The worked cases of DESIGN.md, each its own test."""
from worker.events import rules
from worker.events.rules import Campaign, decide

DAY, HOUR = 86_400, 3_600
NOW = 1_800_000_000.0
VERO = [Campaign("follow-up", "Completes checkout", 10 * DAY)]
SEND_NOW = [Campaign("welcome", "purchase", 0)]


def test_passive_import_never_triggers():
    assert decide(trigger=False, event_time=NOW, now=NOW, campaigns=SEND_NOW, window_s=None).outcome == rules.PASSIVE


def test_vero_nine_days_ago_with_ten_day_delay_is_scheduled_one_day_out():
    decision = decide(trigger=True, event_time=NOW - 9 * DAY, now=NOW, campaigns=VERO, window_s=None)
    [action] = decision.actions
    assert action.kind == rules.SCHEDULED
    assert action.at == NOW + DAY


def test_vero_ten_days_ago_is_discarded():
    [action] = decide(trigger=True, event_time=NOW - 10 * DAY, now=NOW, campaigns=VERO, window_s=None).actions
    assert action.kind == rules.DISCARDED and action.at is None


def test_customerio_71_hours_ago_sends_now():
    [action] = decide(trigger=True, event_time=NOW - 71 * HOUR, now=NOW, campaigns=SEND_NOW,
                      window_s=72 * HOUR).actions
    assert action.kind == rules.SENT_NOW and action.at == NOW


def test_customerio_73_hours_ago_is_outside_the_window():
    decision = decide(trigger=True, event_time=NOW - 73 * HOUR, now=NOW, campaigns=SEND_NOW, window_s=72 * HOUR)
    assert decision.outcome == rules.OUTSIDE_WINDOW and not decision.actions


def test_customerio_without_timestamp_triggers():
    [action] = decide(trigger=True, event_time=None, now=NOW, campaigns=SEND_NOW, window_s=72 * HOUR).actions
    assert action.kind == rules.SENT_NOW


def test_future_event_never_triggers():
    decision = decide(trigger=True, event_time=NOW + HOUR, now=NOW, campaigns=SEND_NOW, window_s=None,
                      clock_skew_s=300)
    assert decision.outcome == rules.FUTURE


def test_clock_skew_allowance():
    decision = decide(trigger=True, event_time=NOW + 60, now=NOW, campaigns=SEND_NOW, window_s=None,
                      clock_skew_s=300)
    assert decision.actions[0].kind == rules.SENT_NOW


def test_no_campaign_on_that_event():
    assert decide(trigger=True, event_time=NOW, now=NOW, campaigns=[], window_s=None).outcome == rules.NO_CAMPAIGN


def test_each_campaign_decided_on_its_own():
    campaigns = [Campaign("a", "x", 0), Campaign("b", "x", 2 * DAY), Campaign("c", "x", DAY)]
    actions = decide(trigger=True, event_time=NOW - 1.5 * DAY, now=NOW, campaigns=campaigns, window_s=None).actions
    assert [a.kind for a in actions] == [rules.SENT_NOW, rules.SCHEDULED, rules.DISCARDED]
    assert actions[1].at == NOW + 0.5 * DAY


def test_by_event_index():
    index = rules.by_event([Campaign("a", "x", 0), Campaign("b", "y", 0), Campaign("c", "x", 1)])
    assert [c.name for c in index.exact["x"]] == ["a", "c"]


def test_a_loose_campaign_matches_case_spaces_and_underscores_alike():
    exact, loose = Campaign("e", "Completes checkout", 0), Campaign("l", "Completes checkout", 0, match="loose")
    index = rules.by_event([exact, loose])
    assert index.match("Completes checkout") == ([exact, loose], [])
    assert index.match("completes_checkout") == ([loose], [loose])
    assert index.match("COMPLETES-CHECKOUT ") == ([loose], [loose])
    assert index.match("completes checkouts") == ([], [])
