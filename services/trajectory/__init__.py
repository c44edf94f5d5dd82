"""Trajectory service: what a rider was doing at any instant, from raw feeds."""
