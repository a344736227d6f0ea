"""Email to customers through SMTP (docs/email.md): an outbox written in the transaction of
what an email is about, and a sender that works it off.

    models.py   the `email_outbox` table
    outbox.py   enqueue (in the caller's transaction); claim, send and record (send_due)
    smtp.py     one email handed to the SMTP server (smtplib), an outcome rather than raising

What the emails say is composed above the domains, from the API's own shapes
(billing/notices), so this package depends on nothing but the database and the settings
and every domain may enqueue.
"""
