"""The national monitor's rules, no I/O: how Brug's events move one referral's row of the
minimal dataset (``dataset.py``), reporting periods (``periods.py``), the report figures
(``reports.py``) and disclosure control (``disclosure.py``)."""
