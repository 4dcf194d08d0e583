"""Topics that carry personal data keep it briefly; the others keep the broker's default."""

from __future__ import annotations

from datetime import timedelta

from contracts import topics

HOUR_MS = 3600 * 1000


def _configs(**retention: timedelta) -> dict[str, dict[str, str]]:
    return dict(topics.all_topics(["x-org"], ["x-client"], **retention))


def test_gp_inbound_bundles_are_kept_hours_and_dead_letters_days() -> None:
    configs = _configs()
    assert int(configs[topics.gp_referrals("x-client")]["retention.ms"]) == 6 * HOUR_MS
    assert int(configs[topics.DEAD_LETTER]["retention.ms"]) == 3 * 24 * HOUR_MS
    personal = {topics.gp_referrals("x-client"), topics.DEAD_LETTER}
    assert all(config == {} for name, config in configs.items() if name not in personal)


def test_the_retention_is_configurable() -> None:
    configs = _configs(
        gp_inbound_retention=timedelta(hours=1), dead_letter_retention=timedelta(days=1)
    )
    assert int(configs[topics.gp_referrals("x-client")]["retention.ms"]) == HOUR_MS
    assert int(configs[topics.DEAD_LETTER]["retention.ms"]) == 24 * HOUR_MS
