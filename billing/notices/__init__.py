"""What customers are told by email (docs/email.md): usage alerts and invoice notices.

    messages.py  the emails, pure functions of the API's shapes (AlertPublic, InvoicePublic)
    sending.py   composes each row of the email outbox (billing/email) from what the API
                 answers, and sends what is due: the `send_email` job and `billing email send`

It sits above the domains it reads (alerts, invoicing, customers); the domains themselves
only enqueue, through billing/email, in their own transactions.
"""
