"""PrintCam tests."""
