"""The keyed pseudonym of a patient's BSN: HMAC-SHA256 under ``BRUG_PSEUDONYM_KEY``.

The one place a BSN becomes something Brug may keep. The FHIR edge computes it at intake
(``referrals.patient_pseudonym``); the audit trail copies it onto every row about the
referral, and ``brug audit report --bsn`` computes it again to find a patient's accesses.
Without the key the pseudonym cannot be reversed or recomputed from a guessed BSN (there
are only 10⁹ of them, so an unkeyed hash would be no pseudonym at all). Changing the key
orphans the pseudonyms already written: keep it as long as the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac

# For the dev stack and the tests only: production sets BRUG_PSEUDONYM_KEY to a secret of
# at least 32 random bytes (e.g. `openssl rand -hex 32`).
DEV_PSEUDONYM_KEY = "brug-dev-pseudonym-key-not-for-production"


def bsn_pseudonym(bsn: str, key: str) -> str:
    """64 hex characters; the same BSN under the same key gives the same pseudonym."""
    message = b"brug:bsn:v1:" + bsn.strip().encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
