"""The competition's data: class table (classes), on-disk format (format), readers,
the metric, and the synthetic generator."""
