"""App Connect's connector HTTP API, connected CRM users, the CRM client layer and the built-in CRM."""
