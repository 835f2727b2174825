"""The database queries, grouped per area: one module per kind of record.

- ``items``: storing what a poll found (idempotent, quarantine), own posts, the connector's view
- ``accounts``: an account by key, its streams' cursors, its health
- ``cases``: a case's school
- ``digest``: the week's aggregates behind the weekly digest's figures (``digest.figures``)
- ``web``: the queue (its statement built once per filter combination) and the case page

``monitor.storage.repo`` holds the one statement that differs between the databases
(``insert_statement``). A query two modules need, one that is the heart of an area, or the
SELECTs behind a page or a report (their callers keep the computing and the policy) belong
here; a lone query used in one place may stay next to its caller.
"""
