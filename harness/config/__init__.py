"""The settings table, profiles and building a checked RunSpec from option values."""
