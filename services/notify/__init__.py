"""Notify: every party hears about what concerns them, once, in their language, through the
channel they use (rider: SMS; insurer: email and a signed webhook; mediator: email and a daily
digest of overdue cases).

Layers: ``domain/`` decides who is told what (pure), ``channels/`` send (SMTP, webhook, SMS),
``adapters/`` keep the records (SQL tables with their own Alembic history, Jinja2 templates),
``service.py`` turns a case event into recorded notifications, ``dispatcher.py`` sends what is
due with timeouts, retries and dead letters, ``api.py`` shows them, ``worker.py`` runs it all.
"""
