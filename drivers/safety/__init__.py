"""safety drivers."""
