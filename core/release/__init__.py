"""Publishing: sign-in and roles, releases and their artifacts, the audit log, privacy.

- ``roles``    Role, Permission, Account, ``require`` (the one permission check)
- ``auth``     passwords (argon2id), sign-in with a rate limit, sessions, OIDC mapping, CLI sign-in
- ``users``    account administration (admin)
- ``audit``    the append-only, hash-chained audit log
- ``privacy``  pseudonyms, "who looked at whom", forgetting a shopper
- ``releases`` publish, rollback, schedule, reconcile; ``diff`` draft vs live and its impact
- ``artifact`` the release artifact reader (no database: the storefront uses it); ``build`` the writer;
  ``snapshot`` what the ranking reads, gathered for an artifact
"""
