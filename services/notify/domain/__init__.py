"""The pure rules of notify: routing, digests, retry timing, webhook secret rotation. No I/O,
no clock: times come in as arguments."""
