"""Sending one signed webhook POST safely: where it may connect (`address`) and the sending
itself (`send`), with one resolution, a total deadline and no redirects.

Infrastructure: it knows HTTP and addresses, nothing of customers, alerts or the database.
"""
