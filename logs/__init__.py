"""The log history: every call and message log the server handles, and its event trail."""
