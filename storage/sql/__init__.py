"""What the SQL backends share: the transaction every ledger write goes through (`tx`) and the
API's reads (`views`), written once in SQL that SQLite and PostgreSQL both run. Statements use
`?` placeholders; a backend's connection adapter turns them into its own. Each backend keeps
its own connections, claims, de-duplication and migrations."""
