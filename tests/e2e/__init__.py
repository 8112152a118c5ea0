"""End-to-end tests: a real browser, Home Assistant and the simulators."""
