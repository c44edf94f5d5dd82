"""Mediation service: dispute cases through community review, with signed evidence packets."""
