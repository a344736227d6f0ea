"""Server-rendered pages (Jinja2): the public pricing calculator."""
