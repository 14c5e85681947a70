"""Fakes of real CRMs' HTTP APIs, served on 127.0.0.1 (see `server.FakeApi`)."""
