"""Pure case rules: lifecycle, coverage, deadlines, audit chain. No I/O, no clock, no frameworks."""
