"""The national monitor's I/O: Brug's own events folded into its pseudonymous tables
(``projection.py``, with the rules of ``domain/monitor``), the rows as records
(``store.py``), the replay from the start into fresh tables and the swap (``rebuild.py``),
and the export package (``export.py``)."""
