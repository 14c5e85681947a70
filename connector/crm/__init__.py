"""CRM clients: the contract (`base`), the registry, and one module per CRM."""
