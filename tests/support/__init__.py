"""What the test modules share, by topic: fakes, fixtures and helpers no test module imports from another."""
