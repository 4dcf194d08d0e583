from __future__ import annotations

from pydantic import Field, SecretStr

from adapters.runtime import ServiceSettings

# For the dev stack and the tests only: production sets BRUG_MONITOR_KEY to a secret of at
# least 32 random bytes (e.g. `openssl rand -hex 32`), apart from BRUG_PSEUDONYM_KEY.
DEV_MONITOR_KEY = "brug-dev-monitor-key-not-for-production"


class MonitorSettings(ServiceSettings):
    monitor_key: SecretStr = Field(
        default=SecretStr(DEV_MONITOR_KEY),
        description="HMAC key of the monitor's referral pseudonyms and event digests. Keep "
        "it as long as the dataset: another key gives other pseudonyms, so a rebuild under "
        "it starts a dataset that does not link to exports made before. The default is for "
        "development only.",
    )
    monitor_installation: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="This installation's id in federation packages (e.g. brug-utrecht): who "
        "signed a package, and whose public key a merge trusts for it.",
    )
    monitor_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (raw 32 bytes, base64; `brug monitor keygen`) that "
        "signs `brug monitor export` packages. Unset: exports are not signed.",
    )
