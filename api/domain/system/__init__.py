"""System domain: health and service status."""
