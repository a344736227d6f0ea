"""Email to customers through SMTP (docs/email.md).

    smtp.py     one email handed to the SMTP server (smtplib), an outcome rather than raising

It depends on nothing of ours but the settings, so every domain may use it.
"""
