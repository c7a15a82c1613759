"""Test fakes of the stack's real peers, built from their documented interfaces (importable as
`fakes.<module>`: tests/conftest.py puts tests/ on sys.path)."""
