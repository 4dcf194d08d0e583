"""Every topic has an explicit retention (none depends on the broker's default), and the
topics that carry personal data keep it briefly: GP inbound Bundles hours, dead letters and
the coach's texts on the status topics days. Segments roll at a tenth of the period, so a
record outlives it by a tenth at most (Kafka deletes whole segments)."""

from __future__ import annotations

from datetime import timedelta

from adapters.runtime.settings import ServiceSettings
from contracts import topics

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def _configs(**retention: timedelta) -> dict[str, dict[str, str]]:
    return dict(topics.all_topics(["x-org"], ["x-client"], **retention))


def _kept_ms(config: dict[str, str]) -> int:
    return int(config["retention.ms"])


def test_every_topic_has_an_explicit_retention_and_rolls_segments_within_it() -> None:
    for name, config in _configs().items():
        assert set(config) == {"retention.ms", "segment.ms"}, f"{name}: {config}"
        assert 0 < int(config["segment.ms"]) * topics.SEGMENTS_PER_RETENTION <= _kept_ms(config)


def test_gp_inbound_bundles_are_kept_hours_dead_letters_and_statuses_days() -> None:
    configs = _configs()
    personal = {
        topics.gp_referrals("x-client"): 6 * HOUR_MS,
        topics.DEAD_LETTER: 3 * DAY_MS,
        topics.social_status("x-org"): 3 * DAY_MS,
    }
    for name, kept in personal.items():
        assert _kept_ms(configs[name]) == kept, name
    thin = {name: config for name, config in configs.items() if name not in personal}
    assert {_kept_ms(config) for config in thin.values()} == {7 * DAY_MS}, "thin events: a week"


def test_the_retention_is_configurable() -> None:
    configs = _configs(
        gp_inbound_retention=timedelta(hours=1),
        dead_letter_retention=timedelta(days=1),
        status_retention=timedelta(hours=12),
    )
    assert _kept_ms(configs[topics.gp_referrals("x-client")]) == HOUR_MS
    assert _kept_ms(configs[topics.DEAD_LETTER]) == DAY_MS
    assert _kept_ms(configs[topics.social_status("x-org")]) == 12 * HOUR_MS
    assert configs[topics.gp_referrals("x-client")]["segment.ms"] == str(HOUR_MS // 10)


def test_the_settings_give_every_retention_keyword() -> None:
    retention = ServiceSettings(status_retention_days=2).topic_retention()
    configs = _configs(**retention)
    assert _kept_ms(configs[topics.social_status("x-org")]) == 2 * DAY_MS
    assert _configs(**ServiceSettings().topic_retention()) == _configs(), "defaults agree"
