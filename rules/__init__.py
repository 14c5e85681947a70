"""Auto-logging rules, default placeholder names, the settings merge and the placeholder registry."""
