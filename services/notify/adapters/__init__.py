"""Notify's adapters: SQL tables and stores, in-memory fakes, templates, migrations."""
