"""Pure trajectory rules: no I/O, no clock, no frameworks. Instants are UTC epoch seconds."""
