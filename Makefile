# The two commands a newcomer needs (see README.md).
.PHONY: serve test

serve:  ## serve the app on http://127.0.0.1:8000 (SQLite, built-in CRM, demo login printed)
	./scripts/serve.sh

test:  ## lint, then the whole suite on SQLite and on PostgreSQL
	./scripts/test.sh
