"""FHIR gateway: the medical edge. GP systems submit referrals (FHIR R4) and read their Tasks."""
