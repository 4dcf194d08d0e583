"""How a Brug process proves who it is to Kafka: SASL/SCRAM, over TLS in production.

One settings object (``BRUG_KAFKA_SECURITY_PROTOCOL``, ``BRUG_KAFKA_USERNAME``,
``BRUG_KAFKA_PASSWORD``, ``BRUG_KAFKA_SASL_MECHANISM``, ``BRUG_KAFKA_SSL_CAFILE``) is turned
into the options of each Kafka client Brug uses: FastStream for the services, kafka-python
for tooling and tests, aiokafka for the benchmarks. Without a user name it is PLAINTEXT,
for a broker that authenticates nobody (an external test broker).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
ScramMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaCredentials(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRUG_KAFKA_", extra="ignore")

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: ScramMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    # The CA that signed the brokers' certificates (SASL_SSL); the system's when unset.
    ssl_cafile: Path | None = None

    @classmethod
    def scram(cls, username: str, password: str) -> KafkaCredentials:
        """A principal on the dev stack's SASL_PLAINTEXT loopback listener."""
        return cls(
            security_protocol="SASL_PLAINTEXT", username=username, password=SecretStr(password)
        )

    @property
    def authenticates(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    def environment(self) -> dict[str, str]:
        """The variables that give a child process these credentials."""
        env = {
            "BRUG_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "BRUG_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "BRUG_KAFKA_USERNAME": self.username or "",
            "BRUG_KAFKA_PASSWORD": self._password(),
        }
        if self.ssl_cafile:
            env["BRUG_KAFKA_SSL_CAFILE"] = str(self.ssl_cafile)
        return env

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        options = self._sasl_options()
        if options and self.ssl_cafile:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (the benchmarks' baselines)."""
        options = self._sasl_options()
        if options and self.security_protocol == "SASL_SSL":
            options["ssl_context"] = self._ssl_context()
        return options

    def _sasl_options(self) -> dict[str, Any]:
        """What both clients name alike (nothing for PLAINTEXT)."""
        if not self.authenticates:
            return {}
        return {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self._password(),
        }

    def faststream(self) -> BaseSecurity | None:
        """The ``security=`` of a FastStream ``KafkaBroker``."""
        if not self.authenticates:
            return None
        scram = SASLScram512 if self.sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
        use_ssl = self.security_protocol == "SASL_SSL"
        return scram(
            username=self.username or "",
            password=self._password(),
            use_ssl=use_ssl,
            ssl_context=self._ssl_context() if use_ssl else None,
        )

    def _password(self) -> str:
        return self.password.get_secret_value() if self.password else ""

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
