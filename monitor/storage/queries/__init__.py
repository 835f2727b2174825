"""The database queries, grouped per area: one module per kind of record.

- ``items``: storing what a poll found (idempotent, quarantine), own posts, the connector's view
- ``accounts``: an account by key, its streams' cursors, its health
- ``cases``: a case's school
- ``digest``: the week's aggregates behind the weekly digest's figures (``digest.figures``)
- ``web``: the queue (its statement built once per filter combination) and the case page

``monitor.storage.repo`` holds the one statement that differs between the databases
(``insert_statement``). A query used in one place stays next to its caller; a query two
modules need, or one that is the heart of an area, belongs here.
"""
