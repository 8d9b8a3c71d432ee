"""Reports on a dataset for people: a summary and comparison (``summary``), a montage (``preview``) and
a dataset card (``card``)."""
